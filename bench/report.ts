/**
 * The benchmark report: reads what each bench wrote into bench/results/<YYYY-MM-DD>/, checks the
 * targets, and renders summary.md and the SVG charts. Pure functions over parsed JSON, so the
 * tests feed them small fixtures; only `machineInfo` and `writeReport` touch the system.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TopLevelSpec } from "vega-lite";
import {
  type CdfSeries,
  cdfSpec,
  type GrantGroup,
  grantsSpec,
  type RatioBar,
  ratioSpec,
  renderSvg,
} from "./charts.js";
import type { InstrumentBenchRow } from "./instrument.js";
import type { PairResult } from "./store.js";

// ------------------------------------------------------------------------------------------------
// What the benches write (only the fields the report reads)

export interface StoreJson {
  machine?: { cores: number; node: string };
  results: PairResult[];
  instrumented?: InstrumentBenchRow[];
}

export interface MemoryScaleJson {
  sessions: number;
  rssMB: number;
  fillSeconds: number;
  worstEventLoopGapMs: number;
  eventLoopDelayP99Ms: number;
  sessionsLeftAfterExpiry: number;
}

export interface LockSummary {
  lib: string;
  nodes: number;
  thinkMs: number;
  grantsPerSec: number;
  jain: number;
  jainMin: number;
  starved: number;
  waitP50: number | null;
  waitP99: number | null;
  waitMax: number | null;
  /** Wait ms at the 0th..100th percentile; absent in files written before it was recorded. */
  waitCdf?: Array<number | null>;
}

export interface LockRun {
  lib: string;
  nodes: number;
  thinkMs: number;
  seed: number;
  jain: number;
  grantsPerContender?: number[];
}

export interface LockVerdict {
  nodes: number;
  thinkMs: number;
  jainOk: boolean;
  noStarvation: boolean;
  throughputOk: boolean;
  p99Ok: boolean;
}

export interface LocksJson {
  meta?: { redis?: string; durationMs?: number; seeds?: number[] };
  summaries: LockSummary[];
  verdicts: LockVerdict[];
  runs: LockRun[];
}

export interface McpRow {
  variant: string;
  rps: number;
  ratio: number;
  p50: number;
  p99: number;
  errors: number;
}

export interface McpJson {
  runs: number;
  duration: number;
  connections: number;
  rows: McpRow[];
}

export interface HttpRow {
  setup: string;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export interface HttpJson {
  connections?: number;
  rows: HttpRow[];
}

export interface BenchResults {
  store?: StoreJson;
  memory?: MemoryScaleJson;
  locks?: LocksJson;
  mcp?: McpJson;
  /** bench/http.ts: the reference server under autocannon; the first row is the memory store. */
  http?: HttpJson;
  /** bench/mcp-v2.ts and bench/mcp-routed.ts: summarised by their own Markdown, no chart. */
  mcpV2?: unknown;
  mcpRouted?: unknown;
}

// ------------------------------------------------------------------------------------------------
// Targets

/**
 * Lowest acceptable throughput ratio (subject / baseline, same run) per comparison. The
 * instrumentation target is the one in docs/benchmarks.md#targets; the lock targets live in bench/locks.ts.
 */
export const RATIO_TARGETS = {
  /** The memory store against a Map with JSON.stringify/parse: at least 0.8x. */
  memoryVsMap: 0.8,
  /** The Redis store against raw ioredis sending the same commands, at concurrency 64: 0.9x. */
  redisVsIoredis: 0.9,
  /** instrument() on Redis at concurrency 64, tracing off. */
  instrumentedRedis64: 0.9,
  /** The shared Streamable HTTP handler on Redis against the SDK's in-memory transport map. */
  mcpVsSdk: 0.85,
} as const;

/** Added wall time per memory-store operation by instrument(), tracing off, concurrency 1. */
export const INSTRUMENT_MEMORY_MAX_ADDED_NS = 1000;

export interface TargetCheck {
  bench: string;
  target: string;
  measured: string;
  met: boolean;
}

const x2 = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)}x` : "n/a");
const ms = (n: number | null | undefined): string =>
  n === null || n === undefined || !Number.isFinite(n) ? "n/a" : `${n.toFixed(1)} ms`;

/** Every target the results can be checked against, met or not. */
export function checkTargets(results: BenchResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const r of results.store?.results ?? []) {
    // The Redis target is stated at concurrency 64; at 1 the ratio is reported without one.
    if (r.pair === "redis" && r.concurrency !== 64) continue;
    const min = r.pair === "memory" ? RATIO_TARGETS.memoryVsMap : RATIO_TARGETS.redisVsIoredis;
    checks.push({
      bench: "store",
      target: `${r.subject} >= ${min}x ${r.baseline} (${r.payload === undefined ? "" : `${r.payload} payload, `}concurrency ${r.concurrency})`,
      measured: x2(r.ratio),
      met: r.ratio >= min,
    });
  }
  for (const row of results.store?.instrumented ?? []) {
    if (row.tracing !== "off") continue;
    if (row.backend === "redis" && row.concurrency === 64) {
      checks.push({
        bench: "store",
        target: `instrumented Redis >= ${RATIO_TARGETS.instrumentedRedis64}x bare (concurrency 64, tracing off)`,
        measured: x2(row.ratio),
        met: row.ratio >= RATIO_TARGETS.instrumentedRedis64,
      });
    }
    if (row.backend === "memory" && row.concurrency === 1) {
      checks.push({
        bench: "store",
        target: `instrumented memory adds <= ${INSTRUMENT_MEMORY_MAX_ADDED_NS} ns per operation (concurrency 1, tracing off)`,
        measured: `${row.addedNsPerOp} ns`,
        met: row.addedNsPerOp <= INSTRUMENT_MEMORY_MAX_ADDED_NS,
      });
    }
  }
  for (const row of results.mcp?.rows ?? []) {
    if (row.variant === "baseline") continue;
    checks.push({
      bench: "mcp",
      target: `shared handler (${row.variant} store) >= ${RATIO_TARGETS.mcpVsSdk}x SDK transport map`,
      measured: x2(row.ratio),
      met: row.ratio >= RATIO_TARGETS.mcpVsSdk,
    });
  }
  for (const v of results.locks?.verdicts ?? []) {
    const group = `${v.nodes} node${v.nodes === 1 ? "" : "s"}, think ${v.thinkMs} ms`;
    const ours = results.locks?.summaries.find(
      (s) => s.lib === "mcp-session-store" && s.nodes === v.nodes && s.thinkMs === v.thinkMs,
    );
    const others = (results.locks?.summaries ?? []).filter(
      (s) => s.lib !== "mcp-session-store" && s.nodes === v.nodes && s.thinkMs === v.thinkMs,
    );
    const bestP99 = Math.min(...others.map((s) => s.waitP99 ?? Number.POSITIVE_INFINITY));
    checks.push(
      {
        bench: "locks",
        target: `Jain index >= 0.95 in every seed (${group})`,
        measured: ours ? ours.jainMin.toFixed(3) : "n/a",
        met: v.jainOk,
      },
      {
        bench: "locks",
        target: `no starved contender (${group})`,
        measured: ours ? `${ours.starved} starved` : "n/a",
        met: v.noStarvation,
      },
      {
        bench: "locks",
        target:
          v.thinkMs === 0
            ? `grants/s >= 0.9x the best baseline (${group})`
            : `grants/s >= each baseline (${group})`,
        measured: ours
          ? `${ours.grantsPerSec.toFixed(0)} vs ${others.map((s) => `${s.lib} ${s.grantsPerSec.toFixed(0)}`).join(", ")}`
          : "n/a",
        met: v.throughputOk,
      },
      {
        bench: "locks",
        target: `wait p99 <= half the best baseline's (${group})`,
        measured: ours ? `${ms(ours.waitP99)} vs ${ms(bestP99)}` : "n/a",
        met: v.p99Ok,
      },
    );
  }
  for (const row of results.http?.rows ?? []) {
    checks.push({
      bench: "http",
      target: `no failed request (${row.setup})`,
      measured: `${row.errors} errors`,
      met: row.errors === 0,
    });
  }
  if (results.memory) {
    checks.push({
      bench: "memory",
      target: `every one of ${results.memory.sessions.toLocaleString("en-US")} sessions expires`,
      measured: `${results.memory.sessionsLeftAfterExpiry} left`,
      met: results.memory.sessionsLeftAfterExpiry === 0,
    });
    // The stated targets are for a million sessions of 1 KB; a --quick run stores fewer.
    if (results.memory.sessions >= 1_000_000) {
      checks.push(
        {
          bench: "memory",
          target: "1,000,000 sessions of 1 KB in under 1.6 GB RSS",
          measured: `${results.memory.rssMB} MB`,
          met: results.memory.rssMB < 1600,
        },
        {
          bench: "memory",
          target: "no event-loop stall over 50 ms while they expire",
          measured: `${results.memory.worstEventLoopGapMs} ms`,
          met: results.memory.worstEventLoopGapMs <= 50,
        },
      );
    }
  }
  return checks;
}

// ------------------------------------------------------------------------------------------------
// Chart data

/** Bars of the ratio chart, in a fixed order: store, instrumentation, HTTP, MCP. */
export function ratioBars(results: BenchResults): RatioBar[] {
  const bars: RatioBar[] = [];
  for (const pair of ["memory", "redis"] as const) {
    for (const r of results.store?.results.filter((x) => x.pair === pair) ?? []) {
      bars.push({
        group: pair === "memory" ? "memory store\nvs Map + JSON" : `Redis store\nvs ${r.baseline}`,
        label: `${pair === "memory" && r.payload !== undefined ? `${r.payload} ` : ""}c=${r.concurrency}`,
        ratio: r.ratio,
        target:
          pair === "memory"
            ? RATIO_TARGETS.memoryVsMap
            : r.concurrency === 64
              ? RATIO_TARGETS.redisVsIoredis
              : undefined,
      });
    }
  }
  for (const backend of ["memory", "redis"] as const) {
    for (const row of results.store?.instrumented ?? []) {
      if (row.backend !== backend || row.tracing !== "off") continue;
      const target =
        backend === "redis" && row.concurrency === 64
          ? RATIO_TARGETS.instrumentedRedis64
          : undefined;
      bars.push({
        group: `instrumented\nvs bare ${backend === "memory" ? "memory" : "Redis"}`,
        label: `c=${row.concurrency}`,
        ratio: row.ratio,
        ...(target === undefined ? {} : { target }),
      });
    }
  }
  // Each protocol era's rows against that era's first row (one instance, in-memory state).
  const httpRows = results.http?.rows ?? [];
  const eraOf = (setup: string): string =>
    (setup.includes(":") ? setup.split(":")[0] : "sessions") as string;
  for (const row of httpRows) {
    const first = httpRows.find((r) => eraOf(r.setup) === eraOf(row.setup));
    if (first === undefined || first === row) continue;
    bars.push({
      group: `HTTP server (${eraOf(row.setup)})\nvs ${first.setup.split(": ").at(-1)}`,
      label: row.setup.split(": ").at(-1) ?? row.setup,
      ratio: Math.round((row.requestsPerSec / first.requestsPerSec) * 1000) / 1000,
    });
  }
  for (const row of results.mcp?.rows ?? []) {
    if (row.variant === "baseline") continue;
    bars.push({
      group: "MCP handler\nvs SDK baseline",
      label: row.variant === "redis" ? "Redis" : row.variant,
      ratio: row.ratio,
      target: RATIO_TARGETS.mcpVsSdk,
    });
  }
  return bars;
}

export interface LockGroup {
  nodes: number;
  thinkMs: number;
}

/** The (nodes, think) groups of a lock run, in the order they ran. */
export function lockGroups(locks: LocksJson): LockGroup[] {
  const seen = new Map<string, LockGroup>();
  for (const s of locks.summaries)
    seen.set(`${s.nodes}/${s.thinkMs}`, { nodes: s.nodes, thinkMs: s.thinkMs });
  return [...seen.values()];
}

/**
 * One CDF line per library for a group: the 101 recorded percentiles when present, otherwise the
 * three known points (p50, p99, max). `exact` says which.
 */
export function lockCdfSeries(
  locks: LocksJson,
  group: LockGroup,
): { series: CdfSeries[]; exact: boolean } {
  const summaries = locks.summaries.filter(
    (s) => s.nodes === group.nodes && s.thinkMs === group.thinkMs,
  );
  const exact = summaries.every((s) => Array.isArray(s.waitCdf) && s.waitCdf.length > 1);
  const series = summaries.map((s): CdfSeries => {
    if (exact) {
      const cdf = s.waitCdf as Array<number | null>;
      return {
        name: s.lib,
        quantiles: cdf.map((_, i) => i / (cdf.length - 1)),
        values: cdf.map((v) => v ?? Number.NaN),
      };
    }
    return {
      name: s.lib,
      quantiles: [0.5, 0.99, 1],
      values: [s.waitP50, s.waitP99, s.waitMax].map((v) => v ?? Number.NaN),
    };
  });
  return { series, exact };
}

/** Per-contender grants of the first seed of each library in a group. */
export function lockGrantGroups(locks: LocksJson, group: LockGroup): GrantGroup[] {
  const out: GrantGroup[] = [];
  const libs = [
    ...new Set(
      locks.runs
        .filter((r) => r.nodes === group.nodes && r.thinkMs === group.thinkMs)
        .map((r) => r.lib),
    ),
  ];
  for (const lib of libs) {
    const run = locks.runs
      .filter((r) => r.lib === lib && r.nodes === group.nodes && r.thinkMs === group.thinkMs)
      .sort((a, b) => a.seed - b.seed)[0];
    if (run?.grantsPerContender) {
      out.push({ name: lib, grants: run.grantsPerContender, jain: run.jain });
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Charts

export interface Chart {
  file: string;
  alt: string;
  /** Vega-Lite spec, rendered to SVG by `renderSvg` when the report is written. */
  spec: TopLevelSpec;
}

const groupName = (g: LockGroup): string =>
  `${g.nodes} Redis node${g.nodes === 1 ? "" : "s"}, think ${g.thinkMs} ms`;
const groupFile = (g: LockGroup): string =>
  `${g.nodes}-node${g.nodes === 1 ? "" : "s"}-think-${g.thinkMs}ms`;

/** Every chart the results allow; a bench without results contributes none. */
export function buildCharts(results: BenchResults): Chart[] {
  const charts: Chart[] = [];
  const bars = ratioBars(results);
  if (bars.length > 0) {
    charts.push({
      file: "ratios.svg",
      alt: "Throughput ratios against baselines",
      spec: ratioSpec(bars, {
        title: "Throughput against baselines (same run, medians)",
        subtitle:
          "subject / baseline ops per second; c = concurrency; instrumented: tracing off; HTTP: requests/s of whole MCP sessions",
      }),
    });
  }
  const locks = results.locks;
  if (locks) {
    for (const g of lockGroups(locks)) {
      const { series, exact } = lockCdfSeries(locks, g);
      if (series.length > 0) {
        charts.push({
          file: `lock-wait-cdf-${groupFile(g)}.svg`,
          alt: `Lock wait CDF, ${groupName(g)}`,
          spec: cdfSpec(series, {
            title: `Lock wait CDF: 16 contenders, ${groupName(g)}`,
            subtitle: exact
              ? "every acquisition of all seeds pooled, drawn through its 101 percentiles (p0..p100)"
              : "only p50, p99 and max were recorded: the lines join those three points",
          }),
        });
      }
      const grants = lockGrantGroups(locks, g);
      if (grants.length > 0) {
        charts.push({
          file: `lock-grants-${groupFile(g)}.svg`,
          alt: `Grants per contender, ${groupName(g)}`,
          spec: grantsSpec(grants, {
            title: `Grants per contender: ${groupName(g)}`,
            subtitle: `first seed, ${(locks.meta?.durationMs ?? 0) / 1000} s run, 4 processes x 4 contenders, in process order`,
          }),
        });
      }
    }
  }
  return charts;
}

// ------------------------------------------------------------------------------------------------
// Summary

export interface Machine {
  date: string;
  cores: number;
  cpuModel: string;
  node: string;
  os: string;
  memoryGiB: number;
  loadAverage: number[];
  commit?: string;
  redis?: string;
}

/** The machine the run happens on; `commit` and `redis` only when git / redis-server answer. */
export function machineInfo(now = new Date()): Machine {
  const quiet = (cmd: string, args: string[]): string | undefined => {
    try {
      return execFileSync(cmd, args, {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim();
    } catch {
      return undefined;
    }
  };
  const commit = quiet("git", ["rev-parse", "--short", "HEAD"]);
  const redis = /v=(\S+)/.exec(quiet("redis-server", ["--version"]) ?? "")?.[1];
  return {
    date: now.toISOString().slice(0, 10),
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverage: os.loadavg().map((n) => Math.round(n * 100) / 100),
    ...(commit ? { commit } : {}),
    ...(redis ? { redis } : {}),
  };
}

export type BenchStatus = "ok" | "failed" | "skipped" | "earlier";

export interface BenchRun {
  name: string;
  command: string;
  status: BenchStatus;
  seconds?: number;
  /** Why it failed or was skipped, or when the earlier result was written. */
  detail?: string;
  /** The bench's own Markdown (its `<name>.md`), embedded as written. */
  markdown?: string;
}

export interface SummaryInput {
  command: string;
  machine: Machine;
  quick: boolean;
  runs: BenchRun[];
  checks: TargetCheck[];
  charts: Array<Pick<Chart, "file" | "alt">>;
}

/**
 * Shifts the Markdown headings of an embedded section so its highest heading sits at `level`,
 * keeping their relative depth (at most h6; fenced code untouched).
 */
export function nestHeadings(markdown: string, level: number): string {
  const lines = markdown.split("\n");
  const depths: Array<number | undefined> = [];
  let fenced = false;
  for (const l of lines) {
    if (/^\s*```/.test(l)) fenced = !fenced;
    depths.push(fenced ? undefined : /^(#{1,6})\s/.exec(l)?.[1]?.length);
  }
  const found = depths.filter((d): d is number => d !== undefined);
  if (found.length === 0) return markdown;
  const shift = level - Math.min(...found);
  return lines
    .map((l, i) => {
      const d = depths[i];
      return d === undefined
        ? l
        : `${"#".repeat(Math.min(6, Math.max(1, d + shift)))}${l.slice(d)}`;
    })
    .join("\n");
}

const STATUS_TEXT: Record<BenchStatus, string> = {
  ok: "ok",
  failed: "FAILED",
  skipped: "skipped",
  earlier: "not run (earlier result)",
};

/** One Markdown page for the whole run. */
export function renderSummary(input: SummaryInput): string {
  const m = input.machine;
  const out: string[] = [
    `# Benchmarks, ${m.date}`,
    "",
    `Command: \`${input.command}\`${input.quick ? " (quick: shorter runs, figures are rougher)" : ""}`,
    "",
    "| machine | |",
    "| --- | --- |",
    `| CPU | ${m.cores} cores, ${m.cpuModel} |`,
    `| memory | ${m.memoryGiB} GiB |`,
    `| OS | ${m.os} |`,
    `| Node | ${m.node} |`,
    ...(m.redis ? [`| redis-server | ${m.redis} |`] : []),
    `| load average at start | ${m.loadAverage.join(" ")} |`,
    ...(m.commit ? [`| commit | ${m.commit} |`] : []),
    `| date | ${m.date} |`,
    "",
    "Every ratio compares against a baseline measured in the same run, so load from other",
    "processes on a shared machine hits both sides; absolute figures still move with it.",
    "",
    "## Benches",
    "",
    "| bench | command | status | time |",
    "| --- | --- | --- | ---: |",
  ];
  for (const r of input.runs) {
    const status = r.detail ? `${STATUS_TEXT[r.status]}: ${r.detail}` : STATUS_TEXT[r.status];
    out.push(
      `| ${r.name} | \`${r.command}\` | ${status} | ${r.seconds === undefined ? "" : `${Math.round(r.seconds)} s`} |`,
    );
  }
  if (input.checks.length > 0) {
    const met = input.checks.filter((c) => c.met).length;
    out.push(
      "",
      "## Targets",
      "",
      `${met} of ${input.checks.length} met.`,
      "",
      "| bench | target | measured | |",
      "| --- | --- | --- | --- |",
      ...input.checks.map(
        (c) => `| ${c.bench} | ${c.target} | ${c.measured} | ${c.met ? "met" : "**NOT met**"} |`,
      ),
    );
  }
  if (input.charts.length > 0) {
    out.push("", "## Charts", "");
    for (const c of input.charts) out.push(`![${c.alt}](${c.file})`, "");
    out.pop();
  }
  for (const r of input.runs) {
    if (!r.markdown) continue;
    out.push("", `## ${r.name}`, "", nestHeadings(r.markdown.trim(), 3));
  }
  return `${out.join("\n")}\n`;
}

/** Writes the charts and summary.md into `dir`; returns the files written. */
export async function writeReport(
  dir: string,
  results: BenchResults,
  input: Omit<SummaryInput, "checks" | "charts">,
): Promise<string[]> {
  const charts = buildCharts(results);
  const written: string[] = [];
  for (const c of charts) {
    const file = path.join(dir, c.file);
    writeFileSync(file, await renderSvg(c.spec));
    written.push(file);
  }
  const summary = renderSummary({ ...input, checks: checkTargets(results), charts });
  const file = path.join(dir, "summary.md");
  writeFileSync(file, summary);
  written.unshift(file);
  return written;
}
