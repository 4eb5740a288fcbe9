/**
 * Protocol 2026-07-28 through SDK v2's `createMcpHandler`:
 *   1. tools/call throughput at concurrency 1 and 64, requests served by `handler.fetch`:
 *      - baseline: the SDK's in-memory bus, no store; the tool reads its state from a Map
 *      - redis: `registerRedisBackedServices` on a real redis-server (its bus passed to the
 *        handler); the tool reads its state from a handle (one Redis round trip)
 *      Variants alternate in every round; the ratio redis/baseline is the target (>= 0.85).
 *   2. Event bus delivery latency across processes: a child process publishes 1,000 events/s,
 *      this process receives them through Redis; p50/p99 from the monotonic clock both share.
 * Throughput: BENCH_SLICES (20; 6 with --quick) pairs of BENCH_SLICE_SECONDS (0.5) slices; bus:
 * BENCH_ROUNDS rounds (3; 1) of BENCH_BUS_SECONDS (10; 3). Medians, printed as Markdown and written
 * to bench/results/<YYYY-MM-DD>/mcp-v2.json and mcp-v2.md.
 *
 *   npm run bench:mcp-v2 [-- --quick]
 */
import { fork } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { createMcpHandler, type McpHttpHandler, McpServer } from "@modelcontextprotocol/server";
import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { z } from "zod";
import { createSessionStore } from "../src/factory.js";
import { createEventBus } from "../src/mcp/event-bus.js";
import { redisAccessOf } from "../src/mcp/support.js";
import { registerRedisBackedServices } from "../src/mcp/v2/index.js";
import { knob } from "./quick.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const silent = { info() {}, warn() {}, error() {} };
const PRINCIPAL = { principal: "bench" };

// ------------------------------------------------------------------------------------------------
// Throughput

type Lookup = () => Promise<unknown>;

function handlerWith(lookup: Lookup, bus?: McpHttpHandler["bus"]): McpHttpHandler {
  return createMcpHandler(
    () => {
      const server = new McpServer({ name: "bench", version: "1.0.0" });
      server.registerTool(
        "echo",
        { inputSchema: z.object({ text: z.string() }) },
        async ({ text }) => {
          await lookup();
          return { content: [{ type: "text", text }] };
        },
      );
      return server;
    },
    { legacy: "reject", responseMode: "json", ...(bus === undefined ? {} : { bus }) },
  );
}

/** The exact HTTP request a pinned 2026-07-28 client sends for tools/call, to replay. */
async function recordToolCall(
  handler: McpHttpHandler,
): Promise<{ headers: Headers; body: Record<string, unknown> }> {
  let recorded: { headers: Headers; body: Record<string, unknown> } | undefined;
  const fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const request = new Request(input, init);
    if (request.method === "POST") {
      const body = JSON.parse(await request.clone().text());
      if (body.method === "tools/call") recorded = { headers: new Headers(request.headers), body };
    }
    return handler.fetch(request);
  };
  const client = new Client(
    { name: "bench", version: "1.0.0" },
    { versionNegotiation: { mode: { pin: "2026-07-28" } } },
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL("http://bench.local/mcp"), { fetch }),
  );
  await client.callTool({ name: "echo", arguments: { text: "hi" } });
  await client.close();
  if (recorded === undefined) throw new Error("no tools/call was sent");
  return recorded;
}

/** CPU seconds redis-server has used so far (INFO cpu), to charge each call its Redis share. */
type CpuProbe = () => Promise<number>;

async function throughput(
  handler: McpHttpHandler,
  template: { headers: Headers; body: Record<string, unknown> },
  concurrency: number,
  seconds: number,
  redisCpu: CpuProbe,
): Promise<{ rps: number; cpuUs: number }> {
  let id = 1_000_000;
  let done = 0;
  const until = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < until) {
      const body = JSON.stringify({ ...template.body, id: id++ });
      const response = await handler.fetch(
        new Request("http://bench.local/mcp", { method: "POST", headers: template.headers, body }),
      );
      const json = (await response.json()) as { result?: { content?: unknown[] } };
      if (json.result?.content === undefined)
        throw new Error(`unexpected answer: ${JSON.stringify(json)}`);
      done += 1;
    }
  };
  const redisBefore = await redisCpu();
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = performance.now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  const redisUs = ((await redisCpu()) - redisBefore) * 1e6;
  // CPU per call (this process plus redis-server) does not depend on how busy the machine is,
  // unlike calls per second: on a loaded machine it is the steadier of the two.
  return { rps: (done * 1000) / elapsed, cpuUs: (cpu.user + cpu.system + redisUs) / done };
}

// ------------------------------------------------------------------------------------------------
// Bus latency: the child publishes, this process receives

async function publisher(url: string, rate: number, seconds: number): Promise<void> {
  const store = await createSessionStore({
    redisUrl: url,
    fallback: "error",
    instrumentation: false,
    logger: silent,
  });
  const bus = await createEventBus({
    redis: redisAccessOf(store),
    registry: new Registry(),
    logger: silent,
  });
  process.send?.("ready");
  await new Promise<void>((resolve) => process.once("message", () => resolve()));
  const total = rate * seconds;
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    // hrtime is CLOCK_MONOTONIC: one clock for every process on the machine.
    bus.publish({ kind: "tools_list_changed", params: { h: process.hrtime.bigint().toString() } });
  }
  await new Promise((r) => setTimeout(r, 200));
  await bus.close();
  await store.disconnect();
  process.send?.(total, () => process.exit(0));
}

async function busLatency(url: string, rate: number, seconds: number) {
  const store = await createSessionStore({
    redisUrl: url,
    fallback: "error",
    instrumentation: false,
    logger: silent,
  });
  const bus = await createEventBus({
    redis: redisAccessOf(store),
    registry: new Registry(),
    logger: silent,
  });
  const latencies: number[] = [];
  bus.subscribe((event) => {
    const h = event.params?.h;
    if (typeof h === "string") latencies.push(Number(process.hrtime.bigint() - BigInt(h)) / 1e6);
  });
  const child = fork(
    fileURLToPath(import.meta.url),
    ["--publisher", url, String(rate), String(seconds)],
    {
      execArgv: ["--import", "tsx"],
    },
  );
  const sent = await new Promise<number>((resolve, reject) => {
    child.on("message", (msg) => {
      if (msg === "ready") child.send("go");
      else resolve(Number(msg));
    });
    child.once("exit", (code) =>
      code === 0 ? undefined : reject(new Error(`publisher exited ${code}`)),
    );
  });
  await new Promise((r) => setTimeout(r, 100));
  await bus.close();
  await store.disconnect();
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    sent,
    received: latencies.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
  };
}

// ------------------------------------------------------------------------------------------------

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}
const median = (values: number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );

async function main(): Promise<void> {
  const rounds = knob("BENCH_ROUNDS", 3, 1);
  const slices = knob("BENCH_SLICES", 20, 6);
  const sliceSeconds = knob("BENCH_SLICE_SECONDS", 0.5, 0.5);
  const busSeconds = knob("BENCH_BUS_SECONDS", 10, 3);
  const { startRedis } = await import("../test/support/redis.js");
  const redis = await startRedis();
  try {
    const services = await registerRedisBackedServices({
      redisUrl: redis.url,
      prefix: "bench:",
      fallback: "error",
      logger: silent,
      requestStates: { keys: { current: "bench-key-0123456789abcdef0123456789ab" } },
    });
    const info = new Redis(redis.url);
    const redisCpu: CpuProbe = async () => {
      const text = await info.info("cpu");
      const field = (name: string) => Number(text.match(new RegExp(`${name}:([0-9.]+)`))?.[1] ?? 0);
      return field("used_cpu_user") + field("used_cpu_sys");
    };
    const handle = await services.handles.create({ plan: "pro" }, { ...PRINCIPAL, ttl: 3600 });
    const memory = new Map([["state", { plan: "pro" }]]);
    const handlers = {
      baseline: handlerWith(async () => memory.get("state")),
      redis: handlerWith(() => services.handles.get(handle, PRINCIPAL), services.eventBus),
    };
    const template = await recordToolCall(handlers.baseline);
    // Warm-up: the first seconds of a handler run before the JIT has compiled its path.
    for (const variant of ["baseline", "redis"] as const)
      for (const concurrency of [1, 64])
        await throughput(handlers[variant], template, concurrency, 2, redisCpu);
    // Short slices, the two variants back to back, many times: on a shared machine the load
    // drifts, and a ratio of adjacent slices cancels most of the drift that long runs keep.
    const runs: Record<string, number[]> = {};
    for (const concurrency of [1, 64]) {
      for (let slice = 0; slice < slices; slice++) {
        const order =
          slice % 2 === 0 ? (["baseline", "redis"] as const) : (["redis", "baseline"] as const);
        const rps: Record<string, number> = {};
        const cpu: Record<string, number> = {};
        for (const variant of order) {
          const r = await throughput(
            handlers[variant],
            template,
            concurrency,
            sliceSeconds,
            redisCpu,
          );
          rps[variant] = r.rps;
          cpu[variant] = r.cpuUs;
        }
        for (const [key, value] of [
          [`baseline@${concurrency}`, rps.baseline as number],
          [`redis@${concurrency}`, rps.redis as number],
          [`ratio@${concurrency}`, (rps.redis as number) / (rps.baseline as number)],
          [`cpuBaseline@${concurrency}`, cpu.baseline as number],
          [`cpuRedis@${concurrency}`, cpu.redis as number],
        ] as const)
          runs[key] = [...(runs[key] ?? []), value];
      }
      console.error(
        `c=${concurrency}: ratios ${(runs[`ratio@${concurrency}`] ?? []).map((r) => r.toFixed(2)).join(" ")}`,
      );
    }
    const bus: Array<Awaited<ReturnType<typeof busLatency>>> = [];
    for (let round = 0; round < rounds; round++) {
      const r = await busLatency(redis.url, 1000, busSeconds);
      bus.push(r);
      console.error(
        `round ${round + 1}: bus p50 ${r.p50.toFixed(3)} ms p99 ${r.p99.toFixed(3)} ms (${r.received}/${r.sent})`,
      );
    }
    await Promise.all(Object.values(handlers).map((h) => h.close()));
    await services.close();
    info.disconnect();

    const rows = [1, 64].map((c) => {
      const base = median(runs[`baseline@${c}`] ?? []);
      const shared = median(runs[`redis@${c}`] ?? []);
      return {
        concurrency: c,
        baseline: base,
        redis: shared,
        ratio: shared / base,
        pairedRatio: median(runs[`ratio@${c}`] ?? []),
        cpuBaselineUs: median(runs[`cpuBaseline@${c}`] ?? []),
        cpuRedisUs: median(runs[`cpuRedis@${c}`] ?? []),
      };
    });
    const latency = {
      rate: 1000,
      seconds: busSeconds,
      p50: median(bus.map((b) => b.p50)),
      p99: median(bus.map((b) => b.p99)),
      sent: bus.reduce((s, b) => s + b.sent, 0),
      received: bus.reduce((s, b) => s + b.received, 0),
    };
    const md = [
      `tools/call through createMcpHandler (handler.fetch, JSON responses), ${slices} alternating slices of ${sliceSeconds} s per variant, ratio of the median throughputs, and the median of the ratios of adjacent slices, Node ${process.version}:`,
      "",
      "| concurrency | in-memory bus, no store (calls/s) | Redis services (calls/s) | ratio (target >= 0.85) | median of paired ratios | CPU per call, in-memory / Redis (µs) | CPU ratio |",
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
      ...rows.map(
        (r) =>
          `| ${r.concurrency} | ${r.baseline.toFixed(0)} | ${r.redis.toFixed(0)} | ${r.ratio.toFixed(2)} | ${r.pairedRatio.toFixed(2)} | ${r.cpuBaselineUs.toFixed(0)} / ${r.cpuRedisUs.toFixed(0)} | ${(r.cpuBaselineUs / r.cpuRedisUs).toFixed(2)} |`,
      ),
      "",
      `Event bus across processes, ${latency.rate} events/s for ${busSeconds} s, median of ${rounds} rounds: p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms (target p99 < 5 ms); ${latency.received} of ${latency.sent} events delivered.`,
      "",
      `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? "unknown"}), load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" / ")} at the end of the run.`,
    ].join("\n");
    console.log(md);
    const dir = path.join(here, "results", new Date().toISOString().slice(0, 10));
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, "mcp-v2.json"),
      `${JSON.stringify({ rows, latency, rounds, slices, sliceSeconds, loadavg: loadavg(), cores: cpus().length }, null, 2)}\n`,
    );
    writeFileSync(path.join(dir, "mcp-v2.md"), `${md}\n`);
  } finally {
    await redis.stop();
  }
}

if (process.argv[2] === "--publisher") {
  const [, , , url, rate, seconds] = process.argv;
  await publisher(url as string, Number(rate), Number(seconds));
} else {
  await main();
}
