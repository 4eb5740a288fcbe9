/**
 * The benchmark report and its SVG charts, on small fixtures (no benchmark runs here).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  barStatus,
  cdfSpec,
  grantsSpec,
  MIN_WAIT_MS,
  type RatioBar,
  ratioSpec,
  renderSvg,
  STATUS_COLORS,
} from "../bench/charts.js";
import { BENCHES, parseArgs } from "../bench/index.js";
import {
  type BenchResults,
  buildCharts,
  checkTargets,
  type LocksJson,
  lockCdfSeries,
  lockGrantGroups,
  lockGroups,
  type Machine,
  nestHeadings,
  RATIO_TARGETS,
  ratioBars,
  renderSummary,
} from "../bench/report.js";

// ------------------------------------------------------------------------------------------------
// Fixtures

const BARS: RatioBar[] = [
  { group: "memory store\nvs Map", label: "c=1", ratio: 0.75, target: 0.5 },
  { group: "memory store\nvs Map", label: "c=64", ratio: 0.4, target: 0.5 },
  { group: "instrumented", label: "c=1", ratio: 1 },
  { group: "MCP <handler> & SDK", label: "redis", ratio: 2, target: 1 },
];

const cdf = (scale: number) => Array.from({ length: 101 }, (_, p) => (p + 1) * scale);

const LOCKS: LocksJson = {
  meta: { durationMs: 2000, seeds: [1, 2] },
  summaries: [
    {
      lib: "mcp-session-store",
      nodes: 1,
      thinkMs: 0,
      grantsPerSec: 300,
      jain: 0.999,
      jainMin: 0.998,
      starved: 0,
      waitP50: 40,
      waitP99: 80,
      waitMax: 90,
      waitCdf: cdf(1),
    },
    {
      lib: "redlock",
      nodes: 1,
      thinkMs: 0,
      grantsPerSec: 500,
      jain: 0.5,
      jainMin: 0.4,
      starved: 2,
      waitP50: 0.1,
      waitP99: 1500,
      waitMax: 2000,
      waitCdf: cdf(20),
    },
    {
      lib: "mcp-session-store",
      nodes: 3,
      thinkMs: 5,
      grantsPerSec: 250,
      jain: 0.99,
      jainMin: 0.97,
      starved: 0,
      waitP50: 45,
      waitP99: 170,
      waitMax: 220,
    },
    {
      lib: "redlock",
      nodes: 3,
      thinkMs: 5,
      grantsPerSec: 40,
      jain: 0.48,
      jainMin: 0.26,
      starved: 8,
      waitP50: 0.4,
      waitP99: 10500,
      waitMax: 10900,
    },
  ],
  verdicts: [
    { nodes: 1, thinkMs: 0, jainOk: true, noStarvation: true, throughputOk: false, p99Ok: true },
    { nodes: 3, thinkMs: 5, jainOk: true, noStarvation: true, throughputOk: true, p99Ok: true },
  ],
  runs: [
    {
      lib: "mcp-session-store",
      nodes: 1,
      thinkMs: 0,
      seed: 2,
      jain: 0.9,
      grantsPerContender: Array(16).fill(1),
    },
    {
      lib: "mcp-session-store",
      nodes: 1,
      thinkMs: 0,
      seed: 1,
      jain: 0.999,
      grantsPerContender: Array.from({ length: 16 }, (_, i) => 40 + (i % 2)),
    },
    {
      lib: "redlock",
      nodes: 1,
      thinkMs: 0,
      seed: 1,
      jain: 0.5,
      grantsPerContender: Array.from({ length: 16 }, (_, i) => (i < 2 ? 0 : i * 10)),
    },
    { lib: "mcp-session-store", nodes: 3, thinkMs: 5, seed: 1, jain: 0.99 },
    { lib: "redlock", nodes: 3, thinkMs: 5, seed: 1, jain: 0.48 },
  ],
};

const RESULTS: BenchResults = {
  store: {
    results: [
      {
        pair: "memory",
        concurrency: 1,
        subject: "memory store",
        baseline: "Map + JSON",
        subjectOps: 80_000,
        baselineOps: 100_000,
        ratio: 0.8,
        rounds: 5,
      },
      {
        pair: "redis",
        concurrency: 64,
        subject: "redis store",
        baseline: "raw ioredis",
        subjectOps: 17_000,
        baselineOps: 22_000,
        ratio: 0.77,
        rounds: 5,
      },
    ],
    instrumented: [
      {
        backend: "memory",
        tracing: "off",
        concurrency: 1,
        bareOpsPerSec: 1_000_000,
        instrumentedOpsPerSec: 700_000,
        ratio: 0.7,
        addedNsPerOp: 435,
      },
      {
        backend: "redis",
        tracing: "off",
        concurrency: 64,
        bareOpsPerSec: 90_000,
        instrumentedOpsPerSec: 85_000,
        ratio: 0.94,
        addedNsPerOp: 60_000,
      },
      {
        backend: "redis",
        tracing: "on",
        concurrency: 64,
        bareOpsPerSec: 90_000,
        instrumentedOpsPerSec: 40_000,
        ratio: 0.44,
        addedNsPerOp: 900_000,
      },
    ],
  },
  mcp: {
    runs: 3,
    duration: 5,
    connections: 64,
    rows: [
      { variant: "baseline", rps: 500, ratio: 1, p50: 70, p99: 300, errors: 0 },
      { variant: "memory", rps: 450, ratio: 0.9, p50: 80, p99: 250, errors: 0 },
      { variant: "redis", rps: 1000, ratio: 2, p50: 40, p99: 300, errors: 0 },
    ],
  },
  memory: {
    sessions: 1_000_000,
    rssMB: 1500,
    fillSeconds: 24,
    worstEventLoopGapMs: 144,
    eventLoopDelayP99Ms: 14,
    sessionsLeftAfterExpiry: 0,
  },
  locks: LOCKS,
  http: {
    rows: [
      {
        setup: "sessions: memory store, 1 instance",
        requestsPerSec: 2000,
        p50Ms: 3,
        p99Ms: 11,
        errors: 0,
      },
      {
        setup: "sessions: Redis store, 1 instance",
        requestsPerSec: 1500,
        p50Ms: 4,
        p99Ms: 17,
        errors: 0,
      },
      {
        setup: "sessions: Redis store, 2 instances behind nginx",
        requestsPerSec: 1000,
        p50Ms: 6,
        p99Ms: 29,
        errors: 3,
      },
      {
        setup: "2026-07-28: 1 instance, SDK in-memory bus",
        requestsPerSec: 1000,
        p50Ms: 5,
        p99Ms: 20,
        errors: 0,
      },
      {
        setup: "2026-07-28: Redis services, 1 instance",
        requestsPerSec: 900,
        p50Ms: 5,
        p99Ms: 22,
        errors: 0,
      },
    ],
  },
};

const MACHINE: Machine = {
  date: "2026-11-24",
  cores: 2,
  cpuModel: "Test CPU @ 2.0GHz",
  node: "v20.20.2",
  os: "Linux 6.1 x64",
  memoryGiB: 24,
  loadAverage: [1.5, 2, 2.5],
  commit: "abc1234",
};

// ------------------------------------------------------------------------------------------------
// Charts: Vega-Lite specs, rendered by vega

/** The data rows a single-view or faceted spec carries. */
function rows(spec: unknown): Array<Record<string, unknown>> {
  return (spec as { data: { values: Array<Record<string, unknown>> } }).data.values;
}

/** Items of a kind in vega's SVG: each drawn item names its role ("bar", "tick", "line mark"). */
function marks(svg: string, role: string): number {
  return svg.match(new RegExp(`aria-roledescription="${role}"`, "g"))?.length ?? 0;
}

describe("ratio chart", () => {
  const options = { title: "Ratios & <targets>", subtitle: "same run", width: 800, height: 300 };

  it("colours each bar by its target: met, missed, or none", () => {
    expect(BARS.map(barStatus)).toEqual(["met", "missed", "none", "met"]);
    const data = rows(ratioSpec(BARS, options));
    expect(data.map((d) => [d.comparison, d.label, d.ratio, d.target, d.status])).toEqual([
      ["memory store vs Map", "c=1", 0.75, 0.5, "met"],
      ["memory store vs Map", "c=64", 0.4, 0.5, "missed"],
      ["instrumented", "c=1", 1, null, "none"],
      ["MCP <handler> & SDK", "redis", 2, 1, "met"],
    ]);
  });

  it("leaves out ratios that are not numbers rather than drawing NaN", () => {
    const data = rows(ratioSpec([...BARS, { group: "x", label: "y", ratio: Number.NaN }], options));
    expect(data).toHaveLength(BARS.length);
  });

  it("renders an SVG document with escaped text, one bar per ratio and the target ticks", async () => {
    const svg = await renderSvg(ratioSpec(BARS, options));
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("Ratios &amp; &lt;targets&gt;");
    expect(svg).toContain("MCP &lt;handler&gt; &amp; SDK");
    expect(svg).toContain("throughput / baseline");
    expect(svg).not.toContain("NaN");
    expect(marks(svg, "bar")).toBe(4);
    expect(marks(svg, "tick")).toBe(3);
    expect(marks(svg, "rule mark")).toBe(3);
    for (const color of Object.values(STATUS_COLORS)) expect(svg).toContain(color);
  });
});

describe("wait CDF chart", () => {
  const series = [
    { name: "ours", quantiles: [0, 0.5, 1], values: [0, 2, 40] },
    { name: "theirs", quantiles: [0, 0.5, 1], values: [1, Number.NaN, 400] },
  ];

  it("puts waits on a log axis, floors zero waits and drops missing points", () => {
    const spec = cdfSpec(series, { title: "CDF" }) as unknown as {
      encoding: { x: { scale: { type: string } } };
    };
    expect(spec.encoding.x.scale.type).toBe("log");
    expect(rows(spec).map((d) => [d.library, d.waitMs, d.quantile])).toEqual([
      ["ours", MIN_WAIT_MS, 0],
      ["ours", 2, 0.5],
      ["ours", 40, 1],
      ["theirs", 1, 0],
      ["theirs", 400, 1],
    ]);
  });

  it("renders one line per library with its legend", async () => {
    const svg = await renderSvg(cdfSpec(series, { title: "Lock wait CDF" }));
    expect(svg).toContain(">ours</text>");
    expect(svg).toContain(">theirs</text>");
    expect(svg).toContain("wait for the lock (ms, log scale)");
    expect(marks(svg, "line mark")).toBe(2);
    expect(svg).not.toContain("NaN");
  });
});

describe("grants chart", () => {
  const groups = [
    { name: "ours", grants: [10, 10, 10, 10], jain: 1 },
    { name: "theirs", grants: [37, 1, 1, 1], jain: 0.312 },
  ];

  it("carries every contender's grants and its library's fair share", () => {
    const data = rows(grantsSpec(groups, { title: "Grants" }));
    expect(data).toHaveLength(8);
    expect(data[0]).toEqual({ library: "ours (Jain 1.000)", contender: 0, grants: 10, fair: 10 });
    expect(data[4]).toEqual({ library: "theirs (Jain 0.312)", contender: 0, grants: 37, fair: 10 });
  });

  it("renders a bar per contender in each library's panel", async () => {
    const svg = await renderSvg(grantsSpec(groups, { title: "Grants per contender" }));
    expect(svg).toContain("theirs (Jain 0.312)");
    expect(marks(svg, "bar")).toBe(8);
    expect(marks(svg, "rule mark")).toBe(2);
  });
});

describe("report", () => {
  it("checks every target it has figures for", () => {
    const checks = checkTargets(RESULTS);
    const find = (s: string) => checks.find((c) => c.target.includes(s));
    expect(find("memory store >= 0.8x Map + JSON (concurrency 1)")?.met).toBe(true);
    expect(find("redis store >= 0.9x raw ioredis (concurrency 64)")).toMatchObject({
      measured: "0.77x",
      met: false,
    });
    expect(find("instrumented Redis")).toMatchObject({ measured: "0.94x", met: true });
    expect(find("adds <= 1000 ns")).toMatchObject({ measured: "435 ns", met: true });
    expect(find("shared handler (memory store)")?.met).toBe(true);
    expect(find("shared handler (redis store)")?.met).toBe(true);
    expect(find("grants/s >= 0.9x the best baseline (1 node, think 0 ms)")).toMatchObject({
      met: false,
      measured: "300 vs redlock 500",
    });
    expect(find("wait p99 <= half the best baseline's (3 nodes, think 5 ms)")?.measured).toBe(
      "170.0 ms vs 10500.0 ms",
    );
    expect(find("sessions expires")?.met).toBe(true);
    expect(find("no failed request (sessions: Redis store, 1 instance)")?.met).toBe(true);
    expect(
      find("no failed request (sessions: Redis store, 2 instances behind nginx)"),
    ).toMatchObject({
      measured: "3 errors",
      met: false,
    });
    // Tracing-on rows have no target.
    expect(checks.filter((c) => c.measured === "0.44x")).toEqual([]);
    expect(checkTargets({})).toEqual([]);
  });

  it("orders the ratio bars store, instrumentation, HTTP, MCP, with their targets", () => {
    const bars = ratioBars(RESULTS);
    expect(bars.map((b) => [b.label, b.ratio, b.target])).toEqual([
      ["c=1", 0.8, RATIO_TARGETS.memoryVsMap],
      ["c=64", 0.77, RATIO_TARGETS.redisVsIoredis],
      ["c=1", 0.7, undefined],
      ["c=64", 0.94, RATIO_TARGETS.instrumentedRedis64],
      ["Redis store, 1 instance", 0.75, undefined],
      ["Redis store, 2 instances behind nginx", 0.5, undefined],
      ["Redis services, 1 instance", 0.9, undefined],
      ["memory", 0.9, RATIO_TARGETS.mcpVsSdk],
      ["Redis", 2, RATIO_TARGETS.mcpVsSdk],
    ]);
  });

  it("draws the CDF through the recorded percentiles, or says it has only three", () => {
    const groups = lockGroups(LOCKS);
    expect(groups).toEqual([
      { nodes: 1, thinkMs: 0 },
      { nodes: 3, thinkMs: 5 },
    ]);
    const exact = lockCdfSeries(LOCKS, { nodes: 1, thinkMs: 0 });
    expect(exact.exact).toBe(true);
    expect(exact.series[1]?.values).toHaveLength(101);
    expect(exact.series[1]?.quantiles[50]).toBe(0.5);
    expect(exact.series[1]?.values[50]).toBe(51 * 20);
    const rough = lockCdfSeries(LOCKS, { nodes: 3, thinkMs: 5 });
    expect(rough.exact).toBe(false);
    expect(rough.series[0]).toEqual({
      name: "mcp-session-store",
      quantiles: [0.5, 0.99, 1],
      values: [45, 170, 220],
    });
  });

  it("shows each library's first seed in the grants chart", () => {
    const groups = lockGrantGroups(LOCKS, { nodes: 1, thinkMs: 0 });
    expect(groups.map((g) => [g.name, g.jain, g.grants.length])).toEqual([
      ["mcp-session-store", 0.999, 16],
      ["redlock", 0.5, 16],
    ]);
    expect(lockGrantGroups(LOCKS, { nodes: 3, thinkMs: 5 })).toEqual([]);
  });

  it("builds charts named after their lock group, each rendering to SVG", async () => {
    const charts = buildCharts(RESULTS);
    expect(charts.map((c) => c.file)).toEqual([
      "ratios.svg",
      "lock-wait-cdf-1-node-think-0ms.svg",
      "lock-grants-1-node-think-0ms.svg",
      "lock-wait-cdf-3-nodes-think-5ms.svg",
    ]);
    for (const c of charts) expect((await renderSvg(c.spec)).startsWith("<svg"), c.file).toBe(true);
    expect(JSON.stringify(charts[3]?.spec)).toContain("only p50, p99 and max were recorded");
    expect(buildCharts({})).toEqual([]);
  });

  it("renders one summary with the command, machine, targets, charts and each bench", () => {
    const charts = buildCharts(RESULTS);
    const md = renderSummary({
      command: "npm run bench",
      machine: MACHINE,
      quick: false,
      runs: [
        {
          name: "store",
          command: "node --import tsx bench/store.ts",
          status: "ok",
          seconds: 84.4,
          markdown: "## Store throughput\n\n| a |\n| --- |\n\n### detail",
        },
        {
          name: "locks",
          command: "node --import tsx bench/locks.ts",
          status: "failed",
          seconds: 3,
          detail: "exit 1, see locks.log",
        },
        { name: "http", command: "node --import tsx bench/http.ts", status: "skipped" },
      ],
      checks: checkTargets(RESULTS),
      charts,
    });
    expect(md).toContain("Command: `npm run bench`");
    expect(md).toContain("| CPU | 2 cores, Test CPU @ 2.0GHz |");
    expect(md).toContain("| Node | v20.20.2 |");
    expect(md).toContain("| date | 2026-11-24 |");
    expect(md).toContain("| store | `node --import tsx bench/store.ts` | ok | 84 s |");
    expect(md).toContain(
      "| locks | `node --import tsx bench/locks.ts` | FAILED: exit 1, see locks.log | 3 s |",
    );
    expect(md).toContain("![Throughput ratios against baselines](ratios.svg)");
    expect(md).toContain(
      "![Lock wait CDF, 1 Redis node, think 0 ms](lock-wait-cdf-1-node-think-0ms.svg)",
    );
    const checks = checkTargets(RESULTS);
    expect(md).toContain(`${checks.filter((c) => c.met).length} of ${checks.length} met.`);
    expect(md).toContain("| **NOT met** |");
    // The bench's own Markdown nests under its section, keeping relative depth.
    expect(md).toContain("## store\n\n### Store throughput");
    expect(md).toContain("#### detail");
    expect(md).not.toContain("## http");
  });

  it("nests headings and leaves fenced code alone", () => {
    expect(nestHeadings("# A\ntext\n## B\n```\n# not a heading\n```", 3)).toBe(
      "### A\ntext\n#### B\n```\n# not a heading\n```",
    );
    expect(nestHeadings("no headings", 3)).toBe("no headings");
    expect(nestHeadings("###### deep\n# top", 3)).toBe("###### deep\n### top");
  });
});

describe("bench runner arguments", () => {
  it("runs every bench by default and a chosen subset with --only", () => {
    expect(parseArgs([]).only).toEqual(BENCHES.map((b) => b.name));
    expect(parseArgs(["--only", "store,locks", "--quick"])).toEqual({
      only: ["store", "locks"],
      quick: true,
      help: false,
    });
    expect(parseArgs(["--only=mcp"]).only).toEqual(["mcp"]);
  });

  it("refuses unknown benches and arguments", () => {
    expect(() => parseArgs(["--only", "store,nope"])).toThrow(/unknown bench nope/);
    expect(() => parseArgs(["--only"])).toThrow(/argument missing/);
    expect(() => parseArgs(["--only", ","])).toThrow(/needs a list/);
    expect(() => parseArgs(["--fast"])).toThrow(/Unknown option '--fast'/);
  });

  it("gives every bench the one quick switch and a distinct output", () => {
    for (const b of BENCHES) {
      const source = readFileSync(new URL(`../${b.script}`, import.meta.url), "utf8");
      expect(source, b.name).toMatch(/from "\.\/quick\.js"/);
    }
    expect(new Set(BENCHES.map((b) => b.json)).size).toBe(BENCHES.length);
  });
});
