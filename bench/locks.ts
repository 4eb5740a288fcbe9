/**
 * Lock benchmark: this library's Redlock vs redlock@5.0.0-beta.2 vs redis-semaphore, in one run.
 *
 * 16 contenders in 4 child processes run a fixed-time loop (acquire, hold h, release, think t)
 * on one resource, against 1 and 3 spawned redis-server nodes, for several seeds and think times.
 * Per library: grants/s, Jain fairness index over per-contender grants, min/max grants, wait
 * p50/p99/max, starved contenders (no grant in a run), Redis commands per grant (INFO
 * commandstats delta, commands run inside scripts included).
 *
 *   node --import tsx bench/locks.ts            # full run (~2-3 min)
 *   BENCH_QUICK=1 node --import tsx bench/locks.ts
 *
 * Writes bench/results/<YYYY-MM-DD>/locks.json and locks.md.
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { type RedisNode, startRedisNodes } from "../test/support/redis.js";
import type { ContenderResult, Library, RunRequest, RunResult } from "./locks-worker.js";
import { QUICK } from "./quick.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const PROCESSES = 4;
const CONTENDERS_PER_PROCESS = 4;
const DURATION_MS = QUICK ? 1000 : 2000;
const HOLD_MS = 2;
const THINK_MS = [0, 5];
const SEEDS = QUICK ? [1] : [1, 2, 3];
const NODE_COUNTS = [1, 3];
const LIBRARIES: Library[] = ["mcp-session-store", "redlock", "redis-semaphore"];
/** Commands that are the benchmark's own, not the library's. */
const IGNORED = new Set([
  "info",
  "config|resetstat",
  "config",
  "ping",
  "client|setname",
  "client|setinfo",
  "hello",
  "select",
]);

interface Worker {
  child: ChildProcess;
  next(): Promise<RunResult | { type: "ready" } | { type: "error"; message: string }>;
}

function startWorker(): Worker {
  const child = fork(path.join(here, "locks-worker.ts"), [], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const inbox: unknown[] = [];
  const waiting: Array<(m: unknown) => void> = [];
  child.on("message", (m) => {
    const w = waiting.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  return {
    child,
    next: () =>
      new Promise((resolve, reject) => {
        if (inbox.length > 0) return resolve(inbox.shift() as never);
        const onExit = (code: number | null) => reject(new Error(`worker exited with ${code}`));
        child.once("exit", onExit);
        waiting.push((m) => {
          child.off("exit", onExit);
          resolve(m as never);
        });
      }),
  };
}

async function commandCount(admins: Redis[]): Promise<number> {
  let total = 0;
  for (const admin of admins) {
    const info = await admin.info("commandstats");
    for (const line of info.split("\n")) {
      const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
      if (m && !IGNORED.has(m[1] as string)) total += Number(m[2]);
    }
  }
  return total;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

function jain(xs: number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return sq === 0 ? 0 : (sum * sum) / (xs.length * sq);
}

/** What a run and a summary of runs both report, for one library, node count and think time. */
interface Stats {
  lib: Library;
  nodes: number;
  thinkMs: number;
  grantsPerSec: number;
  jain: number;
  minGrants: number;
  maxGrants: number;
  starved: number;
  errors: number;
  waitP50: number;
  waitP99: number;
  waitMax: number;
  commandsPerGrant: number;
}

interface RunStats extends Stats {
  seed: number;
  grants: number;
  /** Grants of each contender, in process order (for the fairness chart). */
  grantsPerContender: number[];
  waits: number[];
}

async function runOnce(
  workers: Worker[],
  admins: Redis[],
  ports: number[],
  lib: Library,
  thinkMs: number,
  seed: number,
): Promise<RunStats> {
  const resource = `r-${lib}-${ports.length}-${thinkMs}-${seed}-${Date.now()}`;
  await Promise.all(admins.map((a) => a.config("RESETSTAT")));
  const startAt = Date.now() + 500;
  workers.forEach((w, i) => {
    const req: RunRequest = {
      type: "run",
      lib,
      ports,
      resource,
      contenders: CONTENDERS_PER_PROCESS,
      startAt,
      durationMs: DURATION_MS,
      holdMs: HOLD_MS,
      thinkMs,
      seed: seed * 1000 + i,
    };
    w.child.send(req);
  });
  const replies = await Promise.all(workers.map((w) => w.next()));
  const commands = await commandCount(admins);
  const contenders: ContenderResult[] = [];
  for (const reply of replies) {
    if (reply.type !== "result") throw new Error(`worker failed: ${JSON.stringify(reply)}`);
    contenders.push(...reply.contenders);
  }
  const grants = contenders.map((c) => c.grants);
  const total = grants.reduce((a, b) => a + b, 0);
  const waits = contenders.flatMap((c) => c.waits).sort((a, b) => a - b);
  return {
    lib,
    nodes: ports.length,
    thinkMs,
    seed,
    grants: total,
    grantsPerSec: total / (DURATION_MS / 1000),
    jain: jain(grants),
    minGrants: Math.min(...grants),
    maxGrants: Math.max(...grants),
    starved: grants.filter((g) => g === 0).length,
    errors: contenders.reduce((a, c) => a + c.errors, 0),
    waitP50: percentile(waits, 50),
    waitP99: percentile(waits, 99),
    waitMax: waits[waits.length - 1] ?? Number.NaN,
    commandsPerGrant: total === 0 ? Number.NaN : commands / total,
    grantsPerContender: grants,
    waits,
  };
}

interface Summary extends Stats {
  seeds: number;
  jainMin: number;
  /** Wait ms at the 0th, 1st, ..., 100th percentile of the pooled waits (the CDF, downsampled). */
  waitCdf: number[];
}

function summarize(runs: RunStats[]): Summary {
  const first = runs[0] as RunStats;
  const mean = (f: (r: RunStats) => number): number =>
    runs.reduce((a, r) => a + f(r), 0) / runs.length;
  const waits = runs.flatMap((r) => r.waits).sort((a, b) => a - b);
  return {
    lib: first.lib,
    nodes: first.nodes,
    thinkMs: first.thinkMs,
    seeds: runs.length,
    grantsPerSec: mean((r) => r.grantsPerSec),
    jain: mean((r) => r.jain),
    jainMin: Math.min(...runs.map((r) => r.jain)),
    minGrants: Math.min(...runs.map((r) => r.minGrants)),
    maxGrants: Math.max(...runs.map((r) => r.maxGrants)),
    starved: runs.reduce((a, r) => a + r.starved, 0),
    errors: runs.reduce((a, r) => a + r.errors, 0),
    waitP50: percentile(waits, 50),
    waitP99: percentile(waits, 99),
    waitMax: waits[waits.length - 1] ?? Number.NaN,
    commandsPerGrant: mean((r) => r.commandsPerGrant),
    waitCdf: Array.from({ length: 101 }, (_, p) => round3(percentile(waits, p))),
  };
}

interface Verdict {
  nodes: number;
  thinkMs: number;
  jainOk: boolean;
  noStarvation: boolean;
  throughputOk: boolean;
  p99Ok: boolean;
}

/**
 * With think time, at least every baseline's grants/s. Without it the baselines let a releasing
 * contender take the lock straight back (Jain well under 0.95), which FIFO hand-over must not do:
 * there the target is 0.9x the best baseline.
 */
export const THINK_ZERO_RATIO = 0.9;

function throughputMet(ours: Summary, baselines: Summary[]): boolean {
  if (ours.thinkMs === 0) {
    const best = Math.max(...baselines.map((b) => b.grantsPerSec));
    return ours.grantsPerSec >= THINK_ZERO_RATIO * best;
  }
  return baselines.every((b) => ours.grantsPerSec >= b.grantsPerSec);
}

function judge(group: Summary[]): Verdict {
  const ours = group.find((s) => s.lib === "mcp-session-store") as Summary;
  const baselines = group.filter((s) => s.lib !== "mcp-session-store");
  const bestP99 = Math.min(...baselines.map((b) => b.waitP99));
  return {
    nodes: ours.nodes,
    thinkMs: ours.thinkMs,
    jainOk: ours.jainMin >= 0.95,
    noStarvation: ours.starved === 0,
    throughputOk: throughputMet(ours, baselines),
    p99Ok: ours.waitP99 <= bestP99 / 2,
  };
}

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : "-");
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : "-");
const f3 = (n: number): string => (Number.isFinite(n) ? n.toFixed(3) : "-");

function markdown(
  summaries: Summary[],
  verdicts: Verdict[],
  meta: Record<string, unknown>,
): string {
  const lines = [
    `# Lock benchmark (${meta.date})`,
    "",
    `\`${meta.command}\` on ${meta.cpus} CPUs (${meta.cpuModel}), Node ${meta.node}, redis-server ${meta.redis}.`,
    `${PROCESSES} processes x ${CONTENDERS_PER_PROCESS} contenders on one resource, ${DURATION_MS} ms per run,`,
    `hold ${HOLD_MS} ms and think t (each jittered x0.5..1.5 by the seed), seeds ${SEEDS.join(", ")}.`,
    "Wait percentiles pool every acquisition of all seeds; Jain is the mean over seeds (min in brackets);",
    "commands per grant count every command Redis executed, including those inside Lua scripts.",
    "",
    "| nodes | think ms | library | grants/s | Jain (min) | min/max grants | starved | wait p50 ms | wait p99 ms | wait max ms | cmds/grant | errors |",
    "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const s of summaries) {
    lines.push(
      `| ${s.nodes} | ${s.thinkMs} | ${s.lib} | ${f1(s.grantsPerSec)} | ${f3(s.jain)} (${f3(s.jainMin)}) | ${s.minGrants}/${s.maxGrants} | ${s.starved} | ${f2(s.waitP50)} | ${f2(s.waitP99)} | ${f2(s.waitMax)} | ${f1(s.commandsPerGrant)} | ${s.errors} |`,
    );
  }
  lines.push("", "Targets for mcp-session-store (per nodes/think group):", "");
  lines.push(
    "| nodes | think ms | Jain >= 0.95 | no starvation | grants/s >= each baseline | p99 <= best baseline p99 / 2 |",
  );
  lines.push("| ---: | ---: | --- | --- | --- | --- |");
  const yn = (b: boolean): string => (b ? "met" : "NOT met");
  for (const v of verdicts) {
    lines.push(
      `| ${v.nodes} | ${v.thinkMs} | ${yn(v.jainOk)} | ${yn(v.noStarvation)} | ${yn(v.throughputOk)} | ${yn(v.p99Ok)} |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

async function main(): Promise<void> {
  const started = performance.now();
  const workers = Array.from({ length: PROCESSES }, startWorker);
  const nodeSets: RedisNode[][] = [];
  const admins: Redis[] = [];
  try {
    await Promise.all(
      workers.map(async (w) => {
        const m = await w.next();
        if (m.type !== "ready") throw new Error("worker did not start");
      }),
    );
    const summaries: Summary[] = [];
    const verdicts: Verdict[] = [];
    const allRuns: Array<Omit<RunStats, "waits">> = [];
    let redisVersion = "";
    for (const count of NODE_COUNTS) {
      const nodes = await startRedisNodes(count);
      nodeSets.push(nodes);
      const own = nodes.map((n) => new Redis(n.port, n.host));
      admins.push(...own);
      redisVersion ||=
        /redis_version:(\S+)/.exec(await (own[0] as Redis).info("server"))?.[1] ?? "?";
      const ports = nodes.map((n) => n.port);
      for (const thinkMs of THINK_MS) {
        const group: Summary[] = [];
        for (const lib of LIBRARIES) {
          const runs: RunStats[] = [];
          for (const seed of SEEDS) {
            const r = await runOnce(workers, own, ports, lib, thinkMs, seed);
            runs.push(r);
            const { waits: _w, ...rest } = r;
            allRuns.push(rest);
            console.log(
              `nodes=${count} think=${thinkMs} ${lib.padEnd(17)} seed=${seed} grants/s=${f1(r.grantsPerSec)} jain=${f3(r.jain)} p99=${f2(r.waitP99)}ms cmds/grant=${f1(r.commandsPerGrant)} errors=${r.errors}`,
            );
          }
          group.push(summarize(runs));
        }
        summaries.push(...group);
        verdicts.push(judge(group));
      }
      for (const c of own) c.disconnect();
      await Promise.all(nodes.map((n) => n.stop()));
    }
    const date = new Date().toISOString().slice(0, 10);
    const meta = {
      date,
      command: "node --import tsx bench/locks.ts",
      node: process.version,
      redis: redisVersion,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? "?",
      processes: PROCESSES,
      contendersPerProcess: CONTENDERS_PER_PROCESS,
      durationMs: DURATION_MS,
      holdMs: HOLD_MS,
      thinkMs: THINK_MS,
      seeds: SEEDS,
      libraries: {
        redlock: "5.0.0-beta.2 (defaults: retryDelay 200, retryJitter 100)",
        "redis-semaphore": "5.8.0 (defaults: retryInterval 10)",
      },
      seconds: Math.round((performance.now() - started) / 1000),
    };
    const dir = path.join(here, "results", date);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, "locks.json"),
      `${JSON.stringify({ meta, summaries, verdicts, runs: allRuns }, null, 2)}\n`,
    );
    const md = markdown(summaries, verdicts, meta);
    writeFileSync(path.join(dir, "locks.md"), md);
    console.log(
      `\n${md}\nwritten to ${path.relative(process.cwd(), dir)}/locks.{json,md} in ${meta.seconds} s`,
    );
  } finally {
    for (const w of workers) if (w.child.connected) w.child.send({ type: "exit" });
    for (const a of admins) a.disconnect();
    await Promise.all(nodeSets.flat().map((n) => n.stop()));
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
