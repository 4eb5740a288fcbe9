/**
 * Store throughput: get+set of a 1 KB JSON session at concurrency 1 and 64.
 * - memory store vs a Map with JSON.stringify/parse (same async surface), with a nested payload
 *   and a flat one (one 900-character string)
 * - Redis store vs raw ioredis sending the same commands (EVALSHA of the same script with the same
 *   keys and fence arguments, HGET), and vs what a user writes by hand (`SET key json EX ttl`,
 *   `GET`)
 * Each pair runs interleaved in the same process, several rounds; the medians are reported.
 *
 *   npm run bench:store            (BENCH_SECONDS=2 BENCH_ROUNDS=5 to change the run;
 *                                   BENCH_ONLY=memory or BENCH_ONLY=redis for one backend)
 *   BENCH_ONLY=redis-cost npm run bench:store    where the Redis store's cost goes (Linux)
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import {
  createMemorySessionStore,
  createRedisSessionStore,
  type SessionStore,
} from "../src/index.js";
import { SET_SCRIPT } from "../src/stores/scripts.js";
import { startRedis } from "../test/support/redis.js";
import { formatInstrumentBench, runInstrumentBench } from "./instrument.js";
import { knob, QUICK } from "./quick.js";

const SECONDS = knob("BENCH_SECONDS", 2, 0.5);
const ROUNDS = knob("BENCH_ROUNDS", 5, 2);
/** Subject/baseline pairs per round (each run SECONDS / SLICES long). */
const SLICES = 10;
const IDS = 10_000;
const ONLY = process.env.BENCH_ONLY;

/** A ~1 KB session as MCP servers keep them. */
export function sessionPayload(i: number): Record<string, unknown> {
  return {
    protocolVersion: "2025-11-25",
    clientInfo: { name: "bench-client", version: "1.0.0" },
    capabilities: { roots: { listChanged: true }, sampling: {} },
    counter: i,
    notes: Array.from({ length: 8 }, (_, k) => ({ key: `note-${k}`, value: "x".repeat(80) })),
  };
}

/** A flat ~1 KB session: one 900-character string beside a counter. */
export function flatPayload(i: number): Record<string, unknown> {
  return { counter: i, text: `note ${i} `.padEnd(900, "x") };
}

export type PayloadShape = "nested" | "flat";
const PAYLOADS: Record<PayloadShape, (i: number) => Record<string, unknown>> = {
  nested: sessionPayload,
  flat: flatPayload,
};

interface Target {
  name: string;
  get(id: string): Promise<unknown>;
  set(id: string, value: unknown): Promise<void>;
}

/** Runs `concurrency` loops of set+get for SECONDS; returns get+set pairs per second. */
export async function measure(
  target: Target,
  concurrency: number,
  seconds = SECONDS,
  shape: PayloadShape = "nested",
): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let ops = 0;
  const payloads = Array.from({ length: 16 }, (_, i) => PAYLOADS[shape](i));
  const worker = async (w: number) => {
    let i = w;
    while (performance.now() < deadline) {
      for (let k = 0; k < 50; k++) {
        const id = `session-${(i * 7919) % IDS}`;
        await target.set(id, payloads[i % 16]);
        await target.get(id);
        i++;
        ops++;
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return ops / ((performance.now() - start) / 1000);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function storeTarget(name: string, store: SessionStore): Target {
  return { name, get: (id) => store.getSession(id), set: (id, v) => store.setSession(id, v) };
}

function mapTarget(): Target {
  const map = new Map<string, string>();
  return {
    name: "Map + JSON",
    get: async (id) => {
      const json = map.get(id);
      return json === undefined ? null : JSON.parse(json);
    },
    set: async (id, value) => {
      map.set(id, JSON.stringify(value));
    },
  };
}

/** What a user writes by hand: the JSON in a string key with its expiry, read back with GET. */
function plainIoredisTarget(url: string): { target: Target; close(): void } {
  const client = new Redis(url, { enableOfflineQueue: false, lazyConnect: false });
  return {
    target: {
      name: "SET/GET ioredis",
      get: async (id) => {
        const json = await client.get(`bench:plain:{${id}}`);
        return json === null ? null : JSON.parse(json);
      },
      set: async (id, value) => {
        await client.set(`bench:plain:{${id}}`, JSON.stringify(value), "EX", 3600);
      },
    },
    close: () => client.disconnect(),
  };
}

/**
 * Raw ioredis sending what the store sends: EVALSHA of the same script with the same keys and
 * fence arguments (writer, sequence, floor 0, as a store that never saw a failure), and HGET.
 * `fenced: false` sends the script without the tombstone key and fence arguments.
 */
function rawIoredisTarget(url: string, fenced = true): { target: Target; close(): void } {
  const client = new Redis(url, { enableOfflineQueue: false, lazyConnect: false });
  client.defineCommand("benchSet", { numberOfKeys: fenced ? 2 : 1, lua: SET_SCRIPT });
  const c = client as Redis & { benchSet(...args: Array<string | number>): Promise<number> };
  const prefix = fenced ? "bench:raw:" : "bench:unfenced:";
  let seq = 0;
  return {
    target: {
      name: fenced ? "raw ioredis" : "raw ioredis, unfenced",
      get: async (id) => {
        const json = await client.hget(`${prefix}{${id}}`, "d");
        return json === null ? null : JSON.parse(json);
      },
      set: async (id, value) => {
        const key = `${prefix}{${id}}`;
        const json = JSON.stringify(value);
        await (fenced
          ? c.benchSet(key, `${key}:gone`, json, 3_600_000, Date.now(), "w0000001", ++seq, 0)
          : c.benchSet(key, json, 3_600_000, Date.now()));
      },
    },
    close: () => client.disconnect(),
  };
}

export interface PairResult {
  pair: string;
  concurrency: number;
  /** The session measured; absent in files written before there were two. */
  payload?: PayloadShape;
  subject: string;
  baseline: string;
  subjectOps: number;
  baselineOps: number;
  ratio: number;
  rounds: number;
}

/**
 * Interleaves subject and baseline so drift on a noisy machine hits both: each round is SLICES
 * pairs of short runs (subject first in one pair, baseline first in the next), and the ratio is
 * the median of the pairs' ratios. On a shared 2-core machine (load average 8), 1-second runs
 * gave pair ratios anywhere between 0.55x and 1.6x for the same code; 0.2-second pairs follow the
 * load closely enough that the median of 50 of them moves by a few hundredths between runs.
 */
export async function comparePair(
  pair: string,
  subject: Target,
  baseline: Target,
  concurrency: number,
  shape: PayloadShape = "nested",
): Promise<PairResult> {
  const s: number[] = [];
  const b: number[] = [];
  const ratios: number[] = [];
  const slice = SECONDS / SLICES;
  await measure(subject, concurrency, 0.5, shape);
  await measure(baseline, concurrency, 0.5, shape);
  for (let k = 0; k < ROUNDS * SLICES; k++) {
    let x: number;
    let y: number;
    if (k % 2 === 0) {
      x = await measure(subject, concurrency, slice, shape);
      y = await measure(baseline, concurrency, slice, shape);
    } else {
      y = await measure(baseline, concurrency, slice, shape);
      x = await measure(subject, concurrency, slice, shape);
    }
    s.push(x);
    b.push(y);
    ratios.push(x / y);
  }
  return {
    pair,
    concurrency,
    payload: shape,
    subject: subject.name,
    baseline: baseline.name,
    subjectOps: Math.round(median(s)),
    baselineOps: Math.round(median(b)),
    ratio: Math.round(median(ratios) * 1000) / 1000,
    rounds: ROUNDS,
  };
}

export function table(results: PairResult[]): string {
  const lines = [
    "| comparison | payload | concurrency | subject ops/s | baseline ops/s | ratio (median) |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
  ];
  for (const r of results) {
    lines.push(
      `| ${r.subject} vs ${r.baseline} | ${r.payload ?? "nested"} | ${r.concurrency} | ${r.subjectOps.toLocaleString("en-US")} | ${r.baselineOps.toLocaleString("en-US")} | ${r.ratio.toFixed(2)}x |`,
    );
  }
  return lines.join("\n");
}

export async function runStoreBench(): Promise<PairResult[]> {
  const results: PairResult[] = [];
  if (ONLY !== "redis") {
    const memory = createMemorySessionStore({ instrumentation: false });
    for (const shape of ["nested", "flat"] as const) {
      for (const c of [1, 64]) {
        const subject = storeTarget("memory store", memory);
        results.push(await comparePair("memory", subject, mapTarget(), c, shape));
        console.error(`memory ${shape} c=${c}: ${results.at(-1)?.ratio}x`);
      }
    }
    await memory.disconnect();
  }
  if (ONLY === "memory") return results;

  const node = await startRedis();
  try {
    const store = await createRedisSessionStore({
      redisUrl: node.url,
      prefix: "bench:store:",
      instrumentation: false,
    });
    const raw = rawIoredisTarget(node.url);
    const plain = plainIoredisTarget(node.url);
    for (const baseline of [raw.target, plain.target]) {
      for (const c of [1, 64]) {
        results.push(await comparePair("redis", storeTarget("redis store", store), baseline, c));
        console.error(`redis vs ${baseline.name} c=${c}: ${results.at(-1)?.ratio}x`);
      }
    }
    raw.close();
    plain.close();
    await store.disconnect();
  } finally {
    await node.stop();
  }
  return results;
}

/**
 * Where the Redis store's cost over the plain SET/GET goes: CPU of this process and of
 * redis-server per get+set pair at concurrency 64, one step at a time from the plain baseline
 * to the store. Each round runs every step once (order reversed every other round); CPU is
 * summed over the rounds (redis-server's from /proc, 10 ms ticks), throughput is the median of
 * each step's ratio to the plain baseline in its round.
 */
async function runRedisCost(rounds = ROUNDS * 4, pairs = 6400): Promise<string> {
  const node = await startRedis();
  const stores: SessionStore[] = [];
  try {
    const redisCpuMs = (): number => {
      const fields = readFileSync(`/proc/${node.pid}/stat`, "utf8").split(") ")[1]?.split(" ");
      return (Number(fields?.[11]) + Number(fields?.[12])) * 10;
    };
    const store = async (prefix: string, redis?: object): Promise<SessionStore> => {
      const s = await createRedisSessionStore({
        redisUrl: node.url,
        prefix,
        redis,
        instrumentation: false,
      });
      stores.push(s);
      return s;
    };
    const plain = plainIoredisTarget(node.url);
    const unfenced = rawIoredisTarget(node.url, false);
    const raw = rawIoredisTarget(node.url);
    const steps: Target[] = [
      plain.target,
      { ...unfenced.target, name: "same script, unfenced: a hash with version, createdAt, expiry" },
      { ...raw.target, name: "same script, fenced: + tombstone key, writer, seq, floor" },
      storeTarget("redis store", await store("bench:cost:")),
      storeTarget(
        "redis store, enableAutoPipelining",
        await store("bench:ap:", { enableAutoPipelining: true }),
      ),
    ];
    const payloads = Array.from({ length: 16 }, (_, i) => sessionPayload(i));
    const concurrency = 64;
    const run = async (t: Target) => {
      const cpu = process.cpuUsage();
      const redis = redisCpuMs();
      const start = performance.now();
      const per = pairs / concurrency;
      await Promise.all(
        Array.from({ length: concurrency }, async (_, w) => {
          for (let k = 0; k < per; k++) {
            const i = w * per + k;
            const id = `session-${(i * 7919) % IDS}`;
            await t.set(id, payloads[i % 16]);
            await t.get(id);
          }
        }),
      );
      const used = process.cpuUsage(cpu);
      return {
        ms: performance.now() - start,
        nodeMs: (used.user + used.system) / 1000,
        redisMs: redisCpuMs() - redis,
      };
    };
    for (const t of steps) await run(t);
    const sum = steps.map(() => ({ ms: 0, nodeMs: 0, redisMs: 0, ratios: [] as number[] }));
    for (let r = 0; r < rounds; r++) {
      const order = steps.map((_, i) => i);
      if (r % 2) order.reverse();
      const ms: number[] = [];
      for (const i of order) {
        const m = await run(steps[i] as Target);
        const acc = sum[i] as (typeof sum)[number];
        acc.ms += m.ms;
        acc.nodeMs += m.nodeMs;
        acc.redisMs += m.redisMs;
        ms[i] = m.ms;
      }
      for (const [i, acc] of sum.entries()) acc.ratios.push((ms[0] as number) / (ms[i] as number));
    }
    const us = (ms: number) => ((ms * 1000) / (rounds * pairs)).toFixed(1);
    const lines = [
      `| step | pairs/s | vs SET/GET (median) | this process, us/pair | redis-server, us/pair | both |`,
      "| --- | ---: | ---: | ---: | ---: | ---: |",
      ...steps.map((t, i) => {
        const a = sum[i] as (typeof sum)[number];
        const rate = Math.round((rounds * pairs) / (a.ms / 1000)).toLocaleString("en-US");
        return `| ${t.name} | ${rate} | ${median(a.ratios).toFixed(2)}x | ${us(a.nodeMs)} | ${us(a.redisMs)} | ${us(a.nodeMs + a.redisMs)} |`;
      }),
    ];
    plain.close();
    unfenced.close();
    raw.close();
    return lines.join("\n");
  } finally {
    await Promise.all(stores.map((s) => s.disconnect()));
    await node.stop();
  }
}

export function writeResults(name: string, data: unknown, markdown: string): string {
  const dir = join("bench", "results", new Date().toISOString().slice(0, 10));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(data, null, 2)}\n`);
  writeFileSync(join(dir, `${name}.md`), `${markdown}\n`);
  return dir;
}

if (import.meta.url === `file://${process.argv[1]}` && ONLY === "redis-cost") {
  const load = () => (loadavg()[0] as number).toFixed(1);
  console.log(`${cpus().length} cores, load average ${load()} at the start`);
  console.log(await runRedisCost());
  console.log(`load average ${load()} at the end`);
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await runStoreBench();
  if (ONLY !== undefined) {
    // A partial run prints its table and leaves the day's full results alone.
    console.log(table(results));
    process.exit(0);
  }
  console.error("instrumented vs bare ...");
  const instrumented = await runInstrumentBench({ rounds: ROUNDS, quick: QUICK });
  const md = [
    `## Store throughput (get+set of a 1 KB session, ${SECONDS} s x ${ROUNDS} rounds, median)`,
    table(results),
    `## Instrumented vs bare (get+set, ${ROUNDS} rounds, median; tracing "on" = SDK tracer with a no-op exporter)`,
    formatInstrumentBench(instrumented),
  ].join("\n\n");
  const dir = writeResults(
    "store",
    {
      machine: { cores: cpus().length, node: process.version },
      results,
      instrumented,
    },
    md,
  );
  console.log(md);
  console.log(`\nwritten to ${dir}/store.{json,md}`);
}
