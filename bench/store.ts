/**
 * Store throughput: get+set of a 1 KB JSON session at concurrency 1 and 64.
 * - memory store vs a Map with JSON.stringify/parse (same async surface)
 * - Redis store vs raw ioredis sending the same commands (EVALSHA of the same script, HGET)
 * Each pair runs interleaved in the same process, several rounds; the medians are reported.
 *
 *   npm run bench:store            (BENCH_SECONDS=2 BENCH_ROUNDS=5 to change the run)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
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
const IDS = 10_000;

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
): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let ops = 0;
  const payloads = Array.from({ length: 16 }, (_, i) => sessionPayload(i));
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

function rawIoredisTarget(url: string): { target: Target; close(): void } {
  const client = new Redis(url, { enableOfflineQueue: false, lazyConnect: false });
  client.defineCommand("benchSet", { numberOfKeys: 1, lua: SET_SCRIPT });
  const c = client as Redis & {
    benchSet(k: string, d: string, ttl: number, now: number): Promise<number>;
  };
  return {
    target: {
      name: "raw ioredis",
      get: async (id) => {
        const json = await client.hget(`bench:raw:{${id}}`, "d");
        return json === null ? null : JSON.parse(json);
      },
      set: async (id, value) => {
        await c.benchSet(`bench:raw:{${id}}`, JSON.stringify(value), 3_600_000, Date.now());
      },
    },
    close: () => client.disconnect(),
  };
}

export interface PairResult {
  pair: string;
  concurrency: number;
  subject: string;
  baseline: string;
  subjectOps: number;
  baselineOps: number;
  ratio: number;
  rounds: number;
}

/** Interleaves subject and baseline rounds so drift on a noisy machine hits both. */
export async function comparePair(
  pair: string,
  subject: Target,
  baseline: Target,
  concurrency: number,
): Promise<PairResult> {
  const s: number[] = [];
  const b: number[] = [];
  const ratios: number[] = [];
  await measure(subject, concurrency, 0.5);
  await measure(baseline, concurrency, 0.5);
  for (let r = 0; r < ROUNDS; r++) {
    let x: number;
    let y: number;
    if (r % 2 === 0) {
      x = await measure(subject, concurrency);
      y = await measure(baseline, concurrency);
    } else {
      y = await measure(baseline, concurrency);
      x = await measure(subject, concurrency);
    }
    s.push(x);
    b.push(y);
    ratios.push(x / y);
  }
  return {
    pair,
    concurrency,
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
    "| comparison | concurrency | subject ops/s | baseline ops/s | ratio (median) |",
    "| --- | ---: | ---: | ---: | ---: |",
  ];
  for (const r of results) {
    lines.push(
      `| ${r.subject} vs ${r.baseline} | ${r.concurrency} | ${r.subjectOps.toLocaleString("en-US")} | ${r.baselineOps.toLocaleString("en-US")} | ${r.ratio.toFixed(2)}x |`,
    );
  }
  return lines.join("\n");
}

export async function runStoreBench(): Promise<PairResult[]> {
  const results: PairResult[] = [];
  const memory = createMemorySessionStore({ instrumentation: false });
  for (const c of [1, 64]) {
    results.push(await comparePair("memory", storeTarget("memory store", memory), mapTarget(), c));
    console.error(`memory c=${c}: ${results.at(-1)?.ratio}x`);
  }
  await memory.disconnect();

  const node = await startRedis();
  try {
    const store = await createRedisSessionStore({
      redisUrl: node.url,
      prefix: "bench:store:",
      instrumentation: false,
    });
    const raw = rawIoredisTarget(node.url);
    for (const c of [1, 64]) {
      results.push(await comparePair("redis", storeTarget("redis store", store), raw.target, c));
      console.error(`redis c=${c}: ${results.at(-1)?.ratio}x`);
    }
    raw.close();
    await store.disconnect();
  } finally {
    await node.stop();
  }
  return results;
}

export function writeResults(name: string, data: unknown, markdown: string): string {
  const dir = join("bench", "results", new Date().toISOString().slice(0, 10));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(data, null, 2)}\n`);
  writeFileSync(join(dir, `${name}.md`), `${markdown}\n`);
  return dir;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await runStoreBench();
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
