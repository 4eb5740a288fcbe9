/**
 * The benchmark report and its SVG charts, on small fixtures (no benchmark runs here).
 */
import { describe, expect, it } from "vitest";
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
import {
  cdfChart,
  cdfLayout,
  escapeXml,
  grantsChart,
  grantsLayout,
  niceTicks,
  type RatioBar,
  ratioChart,
  ratioLayout,
  STATUS_COLORS,
} from "../bench/svg.js";

// ------------------------------------------------------------------------------------------------
// A tiny XML well-formedness check: one root, balanced and matching tags, quoted attributes with
// unique names, no raw `<` or stray `&` in text or attribute values.

function checkXml(xml: string): string[] {
  const errors: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const name = /^[A-Za-z_:][\w:.-]*/;
  const badAmp = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
  const text = (s: string) => {
    if (badAmp.test(s)) errors.push(`stray & in ${JSON.stringify(s.slice(0, 40))}`);
    if (stack.length === 0 && s.trim() !== "") errors.push("text outside the root element");
  };
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    if (lt < 0) {
      text(xml.slice(i));
      break;
    }
    text(xml.slice(i, lt));
    if (xml.startsWith("<?", lt)) {
      const end = xml.indexOf("?>", lt);
      if (end < 0 || lt !== 0) errors.push("bad XML declaration");
      i = end < 0 ? xml.length : end + 2;
    } else if (xml.startsWith("<!--", lt)) {
      const end = xml.indexOf("-->", lt);
      if (end < 0) errors.push("unclosed comment");
      i = end < 0 ? xml.length : end + 3;
    } else if (xml.startsWith("</", lt)) {
      const end = xml.indexOf(">", lt);
      const tag = xml.slice(lt + 2, end).trim();
      const open = stack.pop();
      if (open !== tag) errors.push(`</${tag}> closes <${open}>`);
      i = end + 1;
    } else {
      const m = name.exec(xml.slice(lt + 1));
      if (!m) {
        errors.push(`bad tag at ${lt}`);
        break;
      }
      let j = lt + 1 + m[0].length;
      const seen = new Set<string>();
      for (;;) {
        while (/\s/.test(xml[j] ?? "")) j++;
        if (xml[j] === ">" || xml.startsWith("/>", j)) break;
        const a = /^([A-Za-z_:][\w:.-]*)\s*=\s*(["'])/.exec(xml.slice(j));
        if (!a) {
          errors.push(`bad attribute in <${m[0]}> at ${j}`);
          return errors;
        }
        const attr = a[1] as string;
        if (seen.has(attr)) errors.push(`duplicate attribute ${attr} in <${m[0]}>`);
        seen.add(attr);
        const close = xml.indexOf(a[2] as string, j + a[0].length);
        const value = xml.slice(j + a[0].length, close);
        if (value.includes("<") || badAmp.test(value)) errors.push(`bad value of ${attr}`);
        j = close + 1;
      }
      if (stack.length === 0) roots++;
      if (xml[j] === ">") {
        stack.push(m[0]);
        i = j + 1;
      } else i = j + 2;
    }
  }
  if (stack.length > 0) errors.push(`unclosed <${stack.join("> <")}>`);
  if (roots !== 1) errors.push(`${roots} root elements`);
  return errors;
}

/** Attributes of every element `<tag ...>` whose class is `cls`. */
function elements(svg: string, tag: string, cls: string): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  for (const m of svg.matchAll(new RegExp(`<${tag}\\s([^>]*?)/?>`, "g"))) {
    const attrs: Record<string, string> = {};
    for (const a of (m[1] as string).matchAll(/([\w:-]+)="([^"]*)"/g)) {
      attrs[a[1] as string] = a[2] as string;
    }
    if (attrs.class === cls) out.push(attrs);
  }
  return out;
}

const num = (s: string | undefined): number => Number(s);

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
      { setup: "memory store, 1 instance", requestsPerSec: 2000, p50Ms: 3, p99Ms: 11, errors: 0 },
      { setup: "Redis store, 1 instance", requestsPerSec: 1500, p50Ms: 4, p99Ms: 17, errors: 0 },
      {
        setup: "Redis store, 2 instances behind nginx",
        requestsPerSec: 1000,
        p50Ms: 6,
        p99Ms: 29,
        errors: 3,
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

describe("XML check", () => {
  it("accepts a well-formed document and rejects broken ones", () => {
    expect(checkXml(`<?xml version="1.0"?>\n<a x="1"><b/><c>t &amp; u</c></a>\n`)).toEqual([]);
    expect(checkXml("<a><b></a></b>")).not.toEqual([]);
    expect(checkXml("<a>x & y</a>")).not.toEqual([]);
    expect(checkXml('<a x="<"/>')).not.toEqual([]);
    expect(checkXml('<a x="1" x="2"/>')).not.toEqual([]);
    expect(checkXml("<a/><b/>")).not.toEqual([]);
    expect(checkXml("<a>")).not.toEqual([]);
  });

  it("escapes every character XML reserves", () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe(
      "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;",
    );
  });
});

describe("niceTicks", () => {
  it("covers the maximum with round steps from 0", () => {
    expect(niceTicks(2.2)).toEqual([0, 0.5, 1, 1.5, 2, 2.5]);
    expect(niceTicks(1.12)).toEqual([0, 0.25, 0.5, 0.75, 1, 1.25]);
    expect(niceTicks(95)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(0)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
  });
});

describe("ratio chart", () => {
  const options = { title: "Ratios & <targets>", subtitle: "sub" };
  const svg = ratioChart(BARS, options);

  it("is well-formed SVG of the requested size with title, axes and legend", () => {
    expect(checkXml(svg)).toEqual([]);
    expect(svg).toContain('width="800" height="400"');
    expect(svg).toContain("<title>Ratios &amp; &lt;targets&gt;</title>");
    expect(svg).toContain('<g class="legend">');
    expect(svg).toContain("throughput / baseline");
    expect(svg).toContain("MCP &lt;handler&gt; &amp; SDK");
  });

  it("draws bar heights proportional to the ratios, 1.0x at the reference line", () => {
    const layout = ratioLayout(BARS, options);
    const rects = elements(svg, "rect", "bar");
    expect(rects.map((r) => num(r["data-value"]))).toEqual(BARS.map((b) => b.ratio));
    const unit = layout.plot.bottom - layout.referenceY;
    expect(unit).toBeGreaterThan(50);
    rects.forEach((r, i) => {
      const ratio = BARS[i]?.ratio as number;
      expect(num(r.height)).toBeCloseTo(ratio * unit, 1);
      expect(num(r.y) + num(r.height)).toBeCloseTo(layout.plot.bottom, 1);
    });
    // The tallest bar fits under the top of the axis.
    expect(layout.yMax).toBeGreaterThanOrEqual(2);
    expect(Math.min(...rects.map((r) => num(r.y)))).toBeGreaterThanOrEqual(layout.plot.top);
    const reference = elements(svg, "line", "reference")[0];
    expect(num(reference?.y1)).toBeCloseTo(layout.referenceY, 1);
  });

  it("colours bars by target status and marks each target at its height", () => {
    const fills = elements(svg, "rect", "bar").map((r) => r.fill);
    expect(fills).toEqual([
      STATUS_COLORS.met,
      STATUS_COLORS.missed,
      STATUS_COLORS.none,
      STATUS_COLORS.met,
    ]);
    const layout = ratioLayout(BARS, options);
    const unit = layout.plot.bottom - layout.referenceY;
    const targets = elements(svg, "line", "target");
    expect(targets.map((t) => num(t["data-value"]))).toEqual([0.5, 0.5, 1]);
    for (const t of targets) {
      expect(num(t.y1)).toBeCloseTo(layout.plot.bottom - num(t["data-value"]) * unit, 1);
    }
  });

  it("keeps bars apart and inside the plot", () => {
    const { bars, plot } = ratioLayout(BARS, options);
    for (let i = 1; i < bars.length; i++) {
      const prev = bars[i - 1] as (typeof bars)[number];
      expect((bars[i] as (typeof bars)[number]).x).toBeGreaterThan(prev.x + prev.width);
    }
    const last = bars[bars.length - 1] as (typeof bars)[number];
    expect(last.x + last.width).toBeLessThanOrEqual(plot.right);
    expect((bars[0] as (typeof bars)[number]).x).toBeGreaterThanOrEqual(plot.left);
  });
});

describe("wait CDF chart", () => {
  const series = [
    { name: "ours", quantiles: [0, 0.5, 1], values: [1, 10, 100] },
    { name: "theirs", quantiles: [0, 0.5, 0.99, 1], values: [0, 0.5, 1000, 5000] },
  ];
  const options = { title: "CDF" };
  const svg = cdfChart(series, options);

  it("is well-formed, one line per series, in the legend", () => {
    expect(checkXml(svg)).toEqual([]);
    const lines = elements(svg, "polyline", "series");
    expect(lines.map((l) => l["data-name"])).toEqual(["ours", "theirs"]);
    expect(svg).toContain(">ours</text>");
    expect(svg).toContain(">theirs</text>");
    expect(svg).toContain("wait for the lock (log scale)");
  });

  it("maps waits on a log axis and fractions linearly", () => {
    const layout = cdfLayout(series, options);
    expect(layout.lo).toBe(-1);
    expect(layout.hi).toBe(4);
    const decade = (layout.plot.right - layout.plot.left) / 5;
    expect(layout.x(1) - layout.x(0.1)).toBeCloseTo(decade, 5);
    expect(layout.x(1000) - layout.x(100)).toBeCloseTo(decade, 5);
    // A zero wait sits on the left edge instead of at minus infinity.
    expect(layout.x(0)).toBe(layout.plot.left);
    expect(layout.y(1)).toBe(layout.plot.top);
    const points = (elements(svg, "polyline", "series")[0]?.points ?? "")
      .split(" ")
      .map((p) => p.split(",").map(Number) as [number, number]);
    expect(points).toHaveLength(3);
    expect(points[0]?.[0]).toBeCloseTo(layout.x(1), 1);
    expect(points[1]?.[0]).toBeCloseTo(layout.x(10), 1);
    expect(points[1]?.[1]).toBeCloseTo(layout.y(0.5), 1);
    expect(points[2]?.[1]).toBeCloseTo(layout.plot.top, 1);
  });

  it("skips missing values instead of writing NaN", () => {
    const svg2 = cdfChart(
      [{ name: "gaps", quantiles: [0, 0.5, 1], values: [1, Number.NaN, 3] }],
      options,
    );
    expect(svg2).not.toContain("NaN");
    expect(elements(svg2, "polyline", "series")[0]?.points?.split(" ")).toHaveLength(2);
  });
});

describe("grants chart", () => {
  const groups = [
    { name: "ours", grants: Array.from({ length: 16 }, () => 40), jain: 1 },
    { name: "redlock", grants: Array.from({ length: 16 }, (_, i) => i * 8), jain: 0.5 },
  ];
  const options = { title: "Grants" };
  const svg = grantsChart(groups, options);

  it("draws one bar per contender, heights proportional to grants", () => {
    expect(checkXml(svg)).toEqual([]);
    const rects = elements(svg, "rect", "bar");
    expect(rects).toHaveLength(32);
    const layout = grantsLayout(groups, options);
    const unit = (layout.plot.bottom - layout.plot.top) / layout.yMax;
    for (const r of rects) {
      expect(num(r.height)).toBeCloseTo(num(r["data-value"]) * unit, 1);
      expect(num(r.y) + num(r.height)).toBeCloseTo(layout.plot.bottom, 1);
    }
    expect(rects.filter((r) => r["data-group"] === "redlock")).toHaveLength(16);
    // Groups do not overlap: every bar of the second group is right of the first group.
    const firstEnd = Math.max(
      ...rects.filter((r) => r["data-group"] === "ours").map((r) => num(r.x) + num(r.width)),
    );
    const secondStart = Math.min(
      ...rects.filter((r) => r["data-group"] === "redlock").map((r) => num(r.x)),
    );
    expect(secondStart).toBeGreaterThan(firstEnd);
  });

  it("marks each group's fair share at its mean and names the Jain index", () => {
    const layout = grantsLayout(groups, options);
    const unit = (layout.plot.bottom - layout.plot.top) / layout.yMax;
    const fair = elements(svg, "line", "fair").map((l) => num(l.y1));
    expect(fair[0]).toBeCloseTo(layout.plot.bottom - 40 * unit, 1);
    expect(fair[1]).toBeCloseTo(layout.plot.bottom - 60 * unit, 1);
    expect(svg).toContain("redlock (Jain 0.500)");
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
    expect(find("grants/s >= each baseline (1 node, think 0 ms)")).toMatchObject({
      met: false,
      measured: "300 vs redlock 500",
    });
    expect(find("wait p99 <= half the best baseline's (3 nodes, think 5 ms)")?.measured).toBe(
      "170.0 ms vs 10500.0 ms",
    );
    expect(find("sessions expires")?.met).toBe(true);
    expect(find("no failed request (Redis store, 1 instance)")?.met).toBe(true);
    expect(find("no failed request (Redis store, 2 instances behind nginx)")).toMatchObject({
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
      ["Redis", 0.75, undefined],
      ["2 + nginx", 0.5, undefined],
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

  it("builds well-formed charts named after their lock group", () => {
    const charts = buildCharts(RESULTS);
    expect(charts.map((c) => c.file)).toEqual([
      "ratios.svg",
      "lock-wait-cdf-1-node-think-0ms.svg",
      "lock-grants-1-node-think-0ms.svg",
      "lock-wait-cdf-3-nodes-think-5ms.svg",
    ]);
    for (const c of charts) expect(checkXml(c.svg), c.file).toEqual([]);
    expect(charts[3]?.svg).toContain("only p50, p99 and max were recorded");
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
    expect(() => parseArgs(["--only"])).toThrow(/needs a list/);
    expect(() => parseArgs(["--fast"])).toThrow(/unknown argument/);
  });

  it("gives every bench a quick setting and a distinct output", () => {
    for (const b of BENCHES) expect(b.quickEnv ?? b.quickArgs, b.name).toBeDefined();
    expect(new Set(BENCHES.map((b) => b.json)).size).toBe(BENCHES.length);
  });
});
