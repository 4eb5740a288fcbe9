/**
 * Hand-built SVG charts for the benchmark report: plain string building, no chart library, no
 * native dependency. Every chart is 800x400 by default, with a title, a subtitle, axes, labels and
 * a legend. Each layout function computes the geometry separately from the rendering so the tests
 * can check that values map to the right bar heights.
 */

export interface ChartOptions {
  title: string;
  subtitle?: string;
  /** @default 800 */
  width?: number;
  /** @default 400 */
  height?: number;
}

export interface Plot {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

const FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
const AXIS = "#37474f";
const GRID = "#e0e0e0";
const MUTED = "#616161";
export const PALETTE = ["#1565c0", "#ef6c00", "#6a1b9a", "#2e7d32", "#c62828", "#00838f"];
export const STATUS_COLORS = { met: "#2e7d32", missed: "#c62828", none: "#78909c" } as const;
const TARGET_COLOR = "#ff8f00";

/** Escapes text for element content and attribute values. */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

/** Rounds a coordinate so the output stays short and stable. */
const r2 = (n: number): string => String(Math.round(n * 100) / 100);

function attrs(a: Record<string, string | number | undefined>): string {
  return Object.entries(a)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${typeof v === "number" ? r2(v) : escapeXml(v as string)}"`)
    .join("");
}

function text(
  x: number,
  y: number,
  content: string,
  a: Record<string, string | number | undefined> = {},
): string {
  return `<text${attrs({ x, y, ...a })}>${escapeXml(content)}</text>`;
}

function line(
  x1: number,
  y1: number,
  x2: number,
  y2: number,
  a: Record<string, string | number | undefined> = {},
): string {
  return `<line${attrs({ x1, y1, x2, y2, ...a })}/>`;
}

/** Step of 1, 2, 2.5 or 5 times a power of ten giving about `count` intervals over `range`. */
export function niceStep(range: number, count = 5): number {
  if (!(range > 0)) return 1;
  const raw = range / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  const nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nice * power;
}

/** Ticks from 0 to the first multiple of a nice step at or above `max`. */
export function niceTicks(max: number, count = 5): number[] {
  const step = niceStep(max > 0 ? max : 1, count);
  const top = Math.ceil((max > 0 ? max : 1) / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(Math.round(v * 1e9) / 1e9);
  return ticks;
}

function frame(options: ChartOptions, body: string[]): string {
  const width = options.width ?? 800;
  const height = options.height ?? 400;
  const head = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg"${attrs({ width, height, viewBox: `0 0 ${width} ${height}` })} font-family="${escapeXml(FONT)}" font-size="12">`,
    `<title>${escapeXml(options.title)}</title>`,
    `<rect${attrs({ x: 0, y: 0, width, height, fill: "#ffffff" })}/>`,
    text(16, 24, options.title, { "font-size": 16, "font-weight": "bold", fill: "#212121" }),
  ];
  if (options.subtitle) head.push(text(16, 42, options.subtitle, { fill: MUTED }));
  return `${[...head, ...body, "</svg>"].join("\n")}\n`;
}

function plotArea(options: ChartOptions, bottomSpace: number): Plot {
  const width = options.width ?? 800;
  const height = options.height ?? 400;
  return { left: 64, right: width - 20, top: 76, bottom: height - bottomSpace };
}

/** Legend entries laid out left to right on one row under the subtitle. */
type LegendItem =
  | { kind: "box"; color: string; label: string }
  | { kind: "line"; color: string; label: string; dash?: string; width?: number };

function legend(items: LegendItem[], x0: number, y: number): string[] {
  const out: string[] = [];
  let x = x0;
  for (const item of items) {
    if (item.kind === "box") {
      out.push(`<rect${attrs({ x, y: y - 9, width: 12, height: 12, fill: item.color })}/>`);
    } else {
      out.push(
        line(x - 2, y - 3, x + 16, y - 3, {
          stroke: item.color,
          "stroke-width": item.width ?? 2,
          "stroke-dasharray": item.dash,
        }),
      );
    }
    out.push(text(x + 20, y + 1, item.label, { fill: "#212121" }));
    x += 20 + item.label.length * 6.5 + 18;
  }
  return [`<g class="legend">`, ...out, "</g>"];
}

function yAxis(plot: Plot, ticks: number[], y: (v: number) => number, fmt: (v: number) => string) {
  const out: string[] = [];
  for (const t of ticks) {
    const ty = y(t);
    out.push(line(plot.left, ty, plot.right, ty, { stroke: GRID }));
    out.push(text(plot.left - 6, ty + 4, fmt(t), { "text-anchor": "end", fill: AXIS }));
  }
  out.push(line(plot.left, plot.top, plot.left, plot.bottom, { stroke: AXIS }));
  out.push(line(plot.left, plot.bottom, plot.right, plot.bottom, { stroke: AXIS }));
  return out;
}

function axisTitleY(plot: Plot, label: string): string {
  const cx = 16;
  const cy = (plot.top + plot.bottom) / 2;
  return text(cx, cy, label, {
    transform: `rotate(-90 ${r2(cx)} ${r2(cy)})`,
    "text-anchor": "middle",
    fill: AXIS,
  });
}

// ------------------------------------------------------------------------------------------------
// (a) Throughput ratios against baselines

export interface RatioBar {
  /**
   * Comparison the bar belongs to, shown once under its bars; "\n" splits it over two lines
   * ("Redis store\nvs raw ioredis").
   */
  group: string;
  /** The bar's own label ("c=64"). */
  label: string;
  /** subject / baseline throughput. */
  ratio: number;
  /** Lowest acceptable ratio, if the comparison has a target. */
  target?: number;
}

export interface BarGeometry {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface RatioLayout {
  plot: Plot;
  yMax: number;
  ticks: number[];
  bars: BarGeometry[];
  /** y of the 1.0x reference line. */
  referenceY: number;
}

export function barStatus(bar: { ratio: number; target?: number }): keyof typeof STATUS_COLORS {
  if (bar.target === undefined) return "none";
  return bar.ratio >= bar.target ? "met" : "missed";
}

export function ratioLayout(bars: RatioBar[], options: ChartOptions): RatioLayout {
  const plot = plotArea(options, 72);
  const finite = bars.map((b) => (Number.isFinite(b.ratio) ? b.ratio : 0));
  const peak = Math.max(1, ...finite, ...bars.map((b) => b.target ?? 0)) * 1.12;
  const ticks = niceTicks(peak, 5);
  const yMax = ticks[ticks.length - 1] as number;
  const scale = (plot.bottom - plot.top) / yMax;
  const groups = groupRuns(bars.map((b) => b.group));
  // One slot per bar plus half a slot between comparisons.
  const slots = bars.length + 0.5 * Math.max(0, groups.length - 1);
  const slot = (plot.right - plot.left) / Math.max(1, slots);
  const width = Math.min(56, slot * 0.64);
  const geometry: BarGeometry[] = [];
  let cursor = plot.left;
  let previous: string | undefined;
  bars.forEach((bar, i) => {
    if (previous !== undefined && bar.group !== previous) cursor += slot * 0.5;
    previous = bar.group;
    const height = (finite[i] as number) * scale;
    geometry.push({ x: cursor + (slot - width) / 2, y: plot.bottom - height, width, height });
    cursor += slot;
  });
  return { plot, yMax, ticks, bars: geometry, referenceY: plot.bottom - scale };
}

/** Consecutive runs of equal values: [value, first index, last index]. */
function groupRuns(values: string[]): Array<[string, number, number]> {
  const runs: Array<[string, number, number]> = [];
  values.forEach((v, i) => {
    const last = runs[runs.length - 1];
    if (last && last[0] === v) last[2] = i;
    else runs.push([v, i, i]);
  });
  return runs;
}

/** Bar chart of throughput ratios with a 1.0x reference line and each bar's target marked. */
export function ratioChart(bars: RatioBar[], options: ChartOptions): string {
  const layout = ratioLayout(bars, options);
  const { plot } = layout;
  const y = (v: number) => plot.bottom - (v / layout.yMax) * (plot.bottom - plot.top);
  const body: string[] = [
    ...legend(
      [
        { kind: "box", color: STATUS_COLORS.met, label: "target met" },
        { kind: "box", color: STATUS_COLORS.missed, label: "target missed" },
        { kind: "box", color: STATUS_COLORS.none, label: "no target" },
        { kind: "line", color: TARGET_COLOR, label: "target", width: 3 },
        { kind: "line", color: AXIS, label: "1.0x = baseline", dash: "6 4" },
      ],
      plot.left,
      60,
    ),
    ...yAxis(plot, layout.ticks, y, (v) => `${v}x`),
    axisTitleY(plot, "throughput / baseline"),
  ];
  bars.forEach((bar, i) => {
    const g = layout.bars[i] as BarGeometry;
    const status = barStatus(bar);
    const value = Number.isFinite(bar.ratio) ? `${bar.ratio.toFixed(2)}x` : "n/a";
    const tip = `${bar.group.replace("\n", " ")} ${bar.label}: ${value}${bar.target === undefined ? "" : ` (target \u2265 ${bar.target}x)`}`;
    body.push(
      `<rect class="bar"${attrs({ "data-value": String(bar.ratio), x: g.x, y: g.y, width: g.width, height: g.height, fill: STATUS_COLORS[status] })}><title>${escapeXml(tip)}</title></rect>`,
    );
    const top = bar.target === undefined ? g.y : Math.min(g.y, y(bar.target) - 2);
    body.push(
      text(g.x + g.width / 2, top - 5, value, {
        "text-anchor": "middle",
        "font-size": 11,
        fill: "#212121",
        // A white halo keeps the figure legible where it crosses the 1.0x line.
        stroke: "#ffffff",
        "stroke-width": 3,
        "paint-order": "stroke",
      }),
    );
    if (bar.target !== undefined) {
      const ty = y(bar.target);
      body.push(
        line(g.x - 5, ty, g.x + g.width + 5, ty, {
          class: "target",
          "data-value": String(bar.target),
          stroke: TARGET_COLOR,
          "stroke-width": 3,
        }),
      );
    }
    body.push(
      text(g.x + g.width / 2, plot.bottom + 15, bar.label, {
        "text-anchor": "middle",
        "font-size": 11,
        fill: AXIS,
      }),
    );
  });
  for (const [group, first, last] of groupRuns(bars.map((b) => b.group))) {
    const a = layout.bars[first] as BarGeometry;
    const b = layout.bars[last] as BarGeometry;
    const cx = (a.x + b.x + b.width) / 2;
    group.split("\n").forEach((part, k) => {
      body.push(
        text(cx, plot.bottom + 31 + k * 14, part, { "text-anchor": "middle", fill: "#212121" }),
      );
    });
    const members = bars.slice(first, last + 1);
    const targets = [...new Set(members.map((m) => m.target))];
    let note = "no target";
    if (targets.length === 1 && targets[0] !== undefined) note = `target \u2265 ${targets[0]}x`;
    else if (targets.length > 1) {
      note = members
        .filter((m) => m.target !== undefined)
        .map((m) => `${m.label}: \u2265 ${m.target}x`)
        .join(", ");
      note = `target ${note}`;
    }
    body.push(
      text(cx, plot.bottom + 62, note, { "text-anchor": "middle", "font-size": 11, fill: MUTED }),
    );
  }
  body.push(
    line(plot.left, layout.referenceY, plot.right, layout.referenceY, {
      class: "reference",
      stroke: AXIS,
      "stroke-width": 1.5,
      "stroke-dasharray": "6 4",
    }),
  );
  return frame(options, body);
}

// ------------------------------------------------------------------------------------------------
// (b) Lock wait CDF

export interface CdfSeries {
  name: string;
  /** Cumulative fractions, ascending, in [0, 1]. */
  quantiles: number[];
  /** Wait in ms at each quantile, ascending. */
  values: number[];
}

export interface CdfLayout {
  plot: Plot;
  /** Decades of the log x axis: [10^lo, 10^hi] ms. */
  lo: number;
  hi: number;
  x(ms: number): number;
  y(q: number): number;
}

/** Smallest wait drawn: shorter waits (and 0) sit on the left edge of the log axis. */
export const MIN_WAIT_MS = 0.01;

export function cdfLayout(series: CdfSeries[], options: ChartOptions): CdfLayout {
  const plot = plotArea(options, 44);
  const all = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v));
  const min = Math.max(MIN_WAIT_MS, Math.min(...all.filter((v) => v > 0), 1));
  const max = Math.max(min * 10, ...all);
  const lo = Math.floor(Math.log10(min));
  let hi = Math.ceil(Math.log10(max));
  if (hi <= lo) hi = lo + 1;
  const x = (ms: number) => {
    const v = Math.log10(Math.max(10 ** lo, ms));
    return plot.left + ((v - lo) / (hi - lo)) * (plot.right - plot.left);
  };
  const y = (q: number) => plot.bottom - q * (plot.bottom - plot.top);
  return { plot, lo, hi, x, y };
}

/** Formats a wait in ms for an axis tick: 0.01 ms ... 100 ms, 1 s, 10 s. */
export function formatMs(ms: number): string {
  if (ms >= 1000) return `${Number((ms / 1000).toPrecision(3))} s`;
  return `${Number(ms.toPrecision(3))} ms`;
}

/** Cumulative distribution of lock waits, one line per library, log-scaled wait axis. */
export function cdfChart(series: CdfSeries[], options: ChartOptions): string {
  const layout = cdfLayout(series, options);
  const { plot, x, y } = layout;
  const body: string[] = [
    ...legend(
      [
        ...series.map(
          (s, i): LegendItem => ({
            kind: "line",
            color: PALETTE[i % PALETTE.length] as string,
            label: s.name,
            width: 2.5,
          }),
        ),
        { kind: "line", color: MUTED, label: "p50 / p99", dash: "2 3" },
      ],
      plot.left,
      60,
    ),
    ...yAxis(plot, [0, 0.25, 0.5, 0.75, 1], y, (q) => `${q * 100}%`),
    axisTitleY(plot, "acquisitions waiting <= x"),
  ];
  for (let d = layout.lo; d <= layout.hi; d++) {
    const tx = x(10 ** d);
    if (d > layout.lo) body.push(line(tx, plot.top, tx, plot.bottom, { stroke: GRID }));
    body.push(line(tx, plot.bottom, tx, plot.bottom + 4, { stroke: AXIS }));
    body.push(
      text(tx, plot.bottom + 17, formatMs(10 ** d), { "text-anchor": "middle", fill: AXIS }),
    );
  }
  body.push(
    text((plot.left + plot.right) / 2, plot.bottom + 34, "wait for the lock (log scale)", {
      "text-anchor": "middle",
      fill: AXIS,
    }),
  );
  for (const q of [0.5, 0.99]) {
    body.push(
      line(plot.left, y(q), plot.right, y(q), { stroke: MUTED, "stroke-dasharray": "2 3" }),
    );
    body.push(text(plot.right - 4, y(q) - 4, `p${q * 100}`, { "text-anchor": "end", fill: MUTED }));
  }
  series.forEach((s, i) => {
    const points: string[] = [];
    s.values.forEach((v, k) => {
      const q = s.quantiles[k];
      if (Number.isFinite(v) && q !== undefined) points.push(`${r2(x(v))},${r2(y(q))}`);
    });
    if (points.length === 0) return;
    body.push(
      `<polyline class="series"${attrs({ "data-name": s.name, points: points.join(" "), fill: "none", stroke: PALETTE[i % PALETTE.length], "stroke-width": 2.5, "stroke-linejoin": "round" })}/>`,
    );
  });
  return frame(options, body);
}

// ------------------------------------------------------------------------------------------------
// (c) Grants per contender

export interface GrantGroup {
  /** Library name. */
  name: string;
  /** Grants of each contender in one run. */
  grants: number[];
  /** Jain fairness index of the run, shown under the group. */
  jain?: number;
}

export interface GrantsLayout {
  plot: Plot;
  yMax: number;
  ticks: number[];
  /** Per group, per contender. */
  bars: BarGeometry[][];
  /** y of each group's fair share (mean grants). */
  fairY: number[];
}

export function grantsLayout(groups: GrantGroup[], options: ChartOptions): GrantsLayout {
  const plot = plotArea(options, 44);
  const ticks = niceTicks(Math.max(1, ...groups.flatMap((g) => g.grants)) * 1.05, 5);
  const yMax = ticks[ticks.length - 1] as number;
  const scale = (plot.bottom - plot.top) / yMax;
  const slot = (plot.right - plot.left) / Math.max(1, groups.length);
  const pad = slot * 0.06;
  const bars = groups.map((g, gi) => {
    const each = (slot - 2 * pad) / Math.max(1, g.grants.length);
    return g.grants.map((v, i) => ({
      x: plot.left + gi * slot + pad + i * each + each * 0.1,
      y: plot.bottom - v * scale,
      width: each * 0.8,
      height: v * scale,
    }));
  });
  const fairY = groups.map((g) => {
    const mean = g.grants.reduce((a, b) => a + b, 0) / Math.max(1, g.grants.length);
    return plot.bottom - mean * scale;
  });
  return { plot, yMax, ticks, bars, fairY };
}

/** Per-contender grants, one group of bars per library, with each group's fair share dashed. */
export function grantsChart(groups: GrantGroup[], options: ChartOptions): string {
  const layout = grantsLayout(groups, options);
  const { plot } = layout;
  const y = (v: number) => plot.bottom - (v / layout.yMax) * (plot.bottom - plot.top);
  const body: string[] = [
    ...legend(
      [
        ...groups.map(
          (g, i): LegendItem => ({
            kind: "box",
            color: PALETTE[i % PALETTE.length] as string,
            label: g.name,
          }),
        ),
        { kind: "line", color: "#212121", label: "fair share (mean)", dash: "5 3" },
        { kind: "box", color: STATUS_COLORS.missed, label: "starved (0 grants)" },
      ],
      plot.left,
      60,
    ),
    ...yAxis(plot, layout.ticks, y, (v) => String(v)),
    axisTitleY(plot, "grants per contender"),
  ];
  groups.forEach((g, gi) => {
    const bars = layout.bars[gi] as BarGeometry[];
    const color = PALETTE[gi % PALETTE.length] as string;
    g.grants.forEach((v, i) => {
      const b = bars[i] as BarGeometry;
      body.push(
        `<rect class="bar"${attrs({ "data-group": g.name, "data-value": String(v), x: b.x, y: b.y, width: b.width, height: b.height, fill: color })}><title>${escapeXml(`${g.name}, contender ${i + 1}: ${v} grants`)}</title></rect>`,
      );
      if (v === 0) {
        body.push(
          `<rect${attrs({ x: b.x, y: plot.bottom - 4, width: b.width, height: 4, fill: STATUS_COLORS.missed })}/>`,
        );
      }
    });
    const first = bars[0];
    const last = bars[bars.length - 1];
    if (first && last) {
      const fy = layout.fairY[gi] as number;
      body.push(
        line(first.x - 3, fy, last.x + last.width + 3, fy, {
          class: "fair",
          stroke: "#212121",
          "stroke-width": 1.5,
          "stroke-dasharray": "5 3",
        }),
      );
      const cx = (first.x + last.x + last.width) / 2;
      const label = g.jain === undefined ? g.name : `${g.name} (Jain ${g.jain.toFixed(3)})`;
      body.push(text(cx, plot.bottom + 17, label, { "text-anchor": "middle", fill: "#212121" }));
      body.push(
        text(cx, plot.bottom + 32, `${g.grants.length} contenders`, {
          "text-anchor": "middle",
          "font-size": 11,
          fill: MUTED,
        }),
      );
    }
  });
  return frame(options, body);
}
