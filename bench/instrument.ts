/**
 * Cost of `instrument()`: instrumented vs bare stores, memory and Redis (a spawned redis-server),
 * tracing off (no SDK) and on (BasicTracerProvider, always sampled, no-op exporter), at
 * concurrency 1 and 64. Rounds alternate bare and instrumented so drift hits both alike; each
 * figure is the median of the rounds.
 *
 *   node --import tsx bench/instrument.ts [--rounds 5] [--quick] [--json]
 *
 * --quick (or BENCH_QUICK=1): a quarter of the operations and 2 rounds, rougher figures.
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { Tracer } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  SimpleSpanProcessor,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { Registry } from "prom-client";
import { createMemorySessionStore, createRedisSessionStore } from "../src/factory.js";
import { instrument } from "../src/telemetry/instrument.js";
import type { SessionStore } from "../src/types.js";
import { startRedis } from "../test/support/redis.js";

export interface InstrumentBenchRow {
  backend: "memory" | "redis";
  tracing: "off" | "on";
  concurrency: number;
  bareOpsPerSec: number;
  instrumentedOpsPerSec: number;
  /** instrumented / bare throughput. */
  ratio: number;
  /** Added wall time per operation, ns (meaningful at concurrency 1). */
  addedNsPerOp: number;
}

const IDS = 1000;
const PAYLOAD = { user: "someone", counter: 1, tags: ["a", "b", "c"] };

/** Runs `total` operations (half get, half set) with `concurrency` workers; returns ops/s. */
async function drive(store: SessionStore, total: number, concurrency: number): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const id = `bench-${i % IDS}`;
      if (i & 1) await store.getSession(id);
      else await store.setSession(id, PAYLOAD);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return total / ((performance.now() - start) / 1000);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function compare(
  bare: SessionStore,
  instrumented: SessionStore,
  total: number,
  concurrency: number,
  rounds: number,
): Promise<{ bare: number; instrumented: number; ratio: number; addedNs: number }> {
  await drive(bare, Math.min(total, 5000), concurrency);
  await drive(instrumented, Math.min(total, 5000), concurrency);
  const b: number[] = [];
  const i: number[] = [];
  const ratios: number[] = [];
  const added: number[] = [];
  for (let round = 0; round < rounds; round++) {
    // Alternate the order so neither side always runs second.
    const first = round % 2 === 0;
    const x = first ? await drive(bare, total, concurrency) : 0;
    const y = await drive(instrumented, total, concurrency);
    const z = first ? x : await drive(bare, total, concurrency);
    b.push(z);
    i.push(y);
    ratios.push(y / z);
    added.push((1 / y - 1 / z) * 1e9 * concurrency);
  }
  return {
    bare: median(b),
    instrumented: median(i),
    ratio: median(ratios),
    addedNs: median(added),
  };
}

const noopExporter: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => {},
};

/** Runs every configuration; returns one row each. */
export async function runInstrumentBench(
  options: { rounds?: number; quick?: boolean } = {},
): Promise<InstrumentBenchRow[]> {
  const rounds = options.rounds ?? (options.quick ? 2 : 5);
  const scale = options.quick ? 0.25 : 1;
  const redis = await startRedis();
  const provider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(noopExporter)],
  });
  const rows: InstrumentBenchRow[] = [];
  const open: SessionStore[] = [];
  try {
    for (const backend of ["memory", "redis"] as const) {
      const make = async (): Promise<SessionStore> => {
        const store =
          backend === "memory"
            ? createMemorySessionStore({ instrumentation: false })
            : await createRedisSessionStore({
                redisUrl: redis.url,
                prefix: "bench:",
                instrumentation: false,
              });
        open.push(store);
        return store;
      };
      const bare = await make();
      for (const tracing of ["off", "on"] as const) {
        const tracer: Tracer | undefined =
          tracing === "on" ? provider.getTracer("bench") : undefined;
        const instrumented = instrument(await make(), {
          registry: new Registry(),
          ...(tracer === undefined ? {} : { tracer }),
        });
        open.push(instrumented);
        for (const concurrency of [1, 64]) {
          const total =
            scale * (backend === "memory" ? 200_000 : concurrency === 1 ? 10_000 : 40_000);
          const r = await compare(bare, instrumented, total, concurrency, rounds);
          rows.push({
            backend,
            tracing,
            concurrency,
            bareOpsPerSec: Math.round(r.bare),
            instrumentedOpsPerSec: Math.round(r.instrumented),
            ratio: Number(r.ratio.toFixed(3)),
            addedNsPerOp: Math.round(r.addedNs),
          });
        }
      }
    }
  } finally {
    await Promise.all(open.map((store) => store.disconnect().catch(() => {})));
    await provider.shutdown();
    await redis.stop();
  }
  return rows;
}

/** Markdown table of the rows. */
export function formatInstrumentBench(rows: InstrumentBenchRow[]): string {
  const lines = [
    "| backend | tracing | concurrency | bare ops/s | instrumented ops/s | ratio | added ns/op |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.backend} | ${r.tracing} | ${r.concurrency} | ${r.bareOpsPerSec} | ${r.instrumentedOpsPerSec} | ${r.ratio} | ${r.addedNsPerOp} |`,
    );
  }
  return lines.join("\n");
}

const isMain =
  process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, ""));
if (isMain) {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string" },
      quick: { type: "boolean", default: process.env.BENCH_QUICK === "1" },
      json: { type: "boolean", default: false },
    },
  });
  const rows = await runInstrumentBench({
    quick: values.quick,
    ...(values.rounds === undefined ? {} : { rounds: Number(values.rounds) }),
  });
  if (values.json) console.log(JSON.stringify(rows));
  else console.log(formatInstrumentBench(rows));
}
