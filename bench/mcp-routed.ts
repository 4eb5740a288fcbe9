/**
 * Round trip of a tool that asks the client once (sampling), two instances on one Redis:
 *   - same: the client's answer is POSTed to the instance that asked (delivered in process)
 *   - routed: the answer is POSTed to the other instance (taken from Redis, published back)
 * At CONCURRENCY clients (one session each, SDK v1), tool calls always to instance A. Modes are
 * interleaved in every round; medians of BENCH_ROUNDS rounds of BENCH_DURATION seconds per mode
 * are printed as Markdown and written to bench/results/<YYYY-MM-DD>/mcp-routed.json and .md.
 *
 *   npm run bench:mcp-routed [-- --quick]   # BENCH_ROUNDS=3 BENCH_DURATION=5 CONCURRENCY=16
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type AskingClient, connectAskingClient } from "../test/fixtures/asking-clients.js";
import { type Instance, routed, spawnInstance } from "../test/fixtures/mcp-helpers.js";
import { startRedis } from "../test/support/redis.js";
import { knob } from "./quick.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = knob("BENCH_ROUNDS", 3, 1);
const DURATION_S = knob("BENCH_DURATION", 5, 2);
const CONCURRENCY = knob("CONCURRENCY", 16, 16);
const MODES = ["same", "routed"] as const;
type Mode = (typeof MODES)[number];

interface RoundResult {
  calls: number;
  perSecond: number;
  p50: number;
  p99: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function connect(mode: Mode, a: Instance, b: Instance): Promise<AskingClient[]> {
  // Answers are POSTs without a JSON-RPC method; everything else goes to A.
  const fetchImpl = routed(({ httpMethod, rpcMethod }) =>
    mode === "routed" && httpMethod === "POST" && rpcMethod === undefined ? b.url : a.url,
  );
  return Promise.all(
    Array.from({ length: CONCURRENCY }, () => connectAskingClient("v1", a.url, fetchImpl)),
  );
}

async function round(clients: AskingClient[], seconds: number): Promise<RoundResult> {
  const latencies: number[] = [];
  const until = performance.now() + seconds * 1000;
  let failures = 0;
  const started = performance.now();
  await Promise.all(
    clients.map(async (client, c) => {
      for (let i = 0; performance.now() < until; i++) {
        const t0 = performance.now();
        const text = await client.call("ask", { what: ["sampling"], tag: `c${c}-${i}` });
        if (!text.endsWith(`|sampled:c${c}-${i}`)) failures++;
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  if (failures > 0) throw new Error(`${failures} calls did not carry the client's answer`);
  latencies.sort((x, y) => x - y);
  return {
    calls: latencies.length,
    perSecond: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

/**
 * Upper bounds (ms) of the buckets holding the 50th and 99th percentile of the answer hop (publish
 * on B to delivery on A), from A's `cross_instance_delivery_seconds` histogram.
 */
async function hop(instance: Instance): Promise<{ count: number; p50: number; p99: number }> {
  const text = await (await fetch(instance.url.replace("/mcp", "/metrics"))).text();
  const buckets: Array<[number, number]> = [];
  for (const line of text.split("\n")) {
    const m =
      /^mcp_session_store_mcp_cross_instance_delivery_seconds_bucket\{(?=[^}]*kind="answer")[^}]*le="([^"]+)"[^}]*\} (\d+)/.exec(
        line,
      );
    if (m !== null)
      buckets.push([m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2])]);
  }
  buckets.sort((x, y) => x[0] - y[0]);
  const count = buckets[buckets.length - 1]?.[1] ?? 0;
  const at = (q: number) => (buckets.find(([, n]) => n >= q * count)?.[0] ?? Number.NaN) * 1000;
  return { count, p50: at(0.5), p99: at(0.99) };
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const env = { REDIS_URL: redis.url, PREFIX: "bench-routed:" };
  const [a, b] = await Promise.all([
    spawnInstance({ ...env, INSTANCE: "A" }),
    spawnInstance({ ...env, INSTANCE: "B" }),
  ]);
  const results: Record<Mode, RoundResult[]> = { same: [], routed: [] };
  let answerHop = { count: 0, p50: Number.NaN, p99: Number.NaN };
  try {
    const clients = { same: await connect("same", a, b), routed: await connect("routed", a, b) };
    // Warm-up: JIT, connections, sessions built on both instances.
    for (const mode of MODES) await round(clients[mode], 1);
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of MODES) {
        const result = await round(clients[mode], DURATION_S);
        results[mode].push(result);
        process.stderr.write(
          `round ${r + 1}/${ROUNDS} ${mode}: ${result.perSecond.toFixed(0)} calls/s, p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms\n`,
        );
      }
    }
    await Promise.allSettled([...clients.same, ...clients.routed].map((c) => c.close()));
    answerHop = await hop(a);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await redis.stop();
  }
  const summary = Object.fromEntries(
    MODES.map((mode) => [
      mode,
      {
        perSecond: median(results[mode].map((r) => r.perSecond)),
        p50: median(results[mode].map((r) => r.p50)),
        p99: median(results[mode].map((r) => r.p99)),
      },
    ]),
  ) as Record<Mode, { perSecond: number; p50: number; p99: number }>;
  const lines = [
    `Tool that asks the client once (sampling), ${CONCURRENCY} concurrent sessions, medians of ${ROUNDS} rounds of ${DURATION_S} s:`,
    "",
    "| answer POSTed to | calls/s | p50 ms | p99 ms |",
    "|---|---:|---:|---:|",
    ...MODES.map((mode) => {
      const s = summary[mode];
      const label = mode === "same" ? "the instance that asked" : "the other instance (routed)";
      return `| ${label} | ${s.perSecond.toFixed(0)} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)} |`;
    }),
    "",
    `Routed p99 minus same-instance p99: ${(summary.routed.p99 - summary.same.p99).toFixed(2)} ms.`,
    `Answer hop (published on B, delivered on A; ${answerHop.count} answers, histogram buckets): p50 <= ${answerHop.p50} ms, p99 <= ${answerHop.p99} ms.`,
  ];
  const markdown = lines.join("\n");
  process.stdout.write(`${markdown}\n`);
  const dir = path.join(here, "results", new Date().toISOString().slice(0, 10));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, "mcp-routed.json"),
    `${JSON.stringify({ concurrency: CONCURRENCY, rounds: ROUNDS, durationS: DURATION_S, results, summary, answerHop }, null, 2)}\n`,
  );
  writeFileSync(path.join(dir, "mcp-routed.md"), `${markdown}\n`);
}

await main();
