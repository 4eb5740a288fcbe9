/**
 * The benchmark report's charts as Vega-Lite specs, rendered to SVG by `vega` in Node (no native
 * dependency: SVG needs no canvas). A chart is its data and encodings; layout, axes, legends and
 * well-formed XML are vega's.
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

export interface ChartOptions {
  title: string;
  subtitle?: string;
  /** @default 800 */
  width?: number;
  /** @default 400 */
  height?: number;
}

export const STATUS_COLORS = { met: "#2e7d32", missed: "#c62828", none: "#78909c" } as const;
const TARGET_COLOR = "#ff8f00";

/** Smallest wait drawn: shorter waits (and 0) sit on the left edge of the log axis. */
export const MIN_WAIT_MS = 0.01;

export interface RatioBar {
  /** Comparison the bar belongs to; "\n" splits it over two lines ("Redis store\nvs raw ioredis"). */
  group: string;
  /** The bar's own label ("c=64"). */
  label: string;
  /** subject / baseline throughput. */
  ratio: number;
  /** Lowest acceptable ratio, if the comparison has a target. */
  target?: number;
}

export interface CdfSeries {
  name: string;
  /** Cumulative fractions, ascending, in [0, 1]. */
  quantiles: number[];
  /** Wait in ms at each quantile, ascending. */
  values: number[];
}

export interface GrantGroup {
  /** Library name. */
  name: string;
  /** Grants of each contender in one run. */
  grants: number[];
  /** Jain fairness index of the run, shown in the group's header. */
  jain?: number;
}

export function barStatus(bar: { ratio: number; target?: number }): keyof typeof STATUS_COLORS {
  if (bar.target === undefined) return "none";
  return bar.ratio >= bar.target ? "met" : "missed";
}

function frame(options: ChartOptions) {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: options.title,
      ...(options.subtitle === undefined ? {} : { subtitle: options.subtitle }),
      anchor: "start" as const,
    },
    background: "white",
    config: { font: "system-ui, Helvetica, Arial, sans-serif", view: { stroke: null } },
  };
}

/** Throughput ratios against their baselines: one bar per measurement, coloured by target status. */
export function ratioSpec(bars: RatioBar[], options: ChartOptions): TopLevelSpec {
  const values = bars
    .filter((bar) => Number.isFinite(bar.ratio))
    .map((bar) => ({
      comparison: bar.group.replaceAll("\n", " "),
      label: bar.label,
      ratio: bar.ratio,
      target: bar.target ?? null,
      status: barStatus(bar),
      reference: 1,
    }));
  const width = options.width ?? 800;
  const groups = new Set(values.map((v) => v.comparison)).size || 1;
  return {
    ...frame(options),
    data: { values },
    facet: { column: { field: "comparison", type: "nominal", title: null, sort: null } },
    spec: {
      width: Math.max(40, Math.floor(width / groups) - 24),
      height: options.height ?? 300,
      layer: [
        {
          mark: { type: "bar", tooltip: true },
          encoding: {
            x: { field: "label", type: "nominal", title: null, sort: null },
            // Never stacked: two bars with one label would add up to a ratio nobody measured.
            y: {
              field: "ratio",
              type: "quantitative",
              title: "throughput / baseline",
              stack: null,
            },
            color: {
              field: "status",
              type: "nominal",
              title: "target",
              scale: {
                domain: Object.keys(STATUS_COLORS),
                range: Object.values(STATUS_COLORS),
              },
            },
          },
        },
        {
          mark: { type: "tick", color: TARGET_COLOR, thickness: 3 },
          encoding: {
            x: { field: "label", type: "nominal", sort: null },
            y: { field: "target", type: "quantitative" },
          },
        },
        {
          // The 1.0x line: subject as fast as its baseline.
          mark: { type: "rule", strokeDash: [4, 4] },
          encoding: { y: { field: "reference", aggregate: "max", type: "quantitative" } },
        },
      ],
    },
    resolve: { scale: { x: "independent" } },
  } as TopLevelSpec;
}

/** Lock wait distribution per library: the CDF on a log axis of milliseconds. */
export function cdfSpec(series: CdfSeries[], options: ChartOptions): TopLevelSpec {
  const values = series.flatMap((s) =>
    s.values.flatMap((ms, i) =>
      Number.isFinite(ms)
        ? [{ library: s.name, waitMs: Math.max(ms, MIN_WAIT_MS), quantile: s.quantiles[i] }]
        : [],
    ),
  );
  return {
    ...frame(options),
    width: options.width ?? 800,
    height: options.height ?? 300,
    data: { values },
    mark: { type: "line", interpolate: "step-after", point: false },
    encoding: {
      x: {
        field: "waitMs",
        type: "quantitative",
        title: "wait for the lock (ms, log scale)",
        scale: { type: "log" },
      },
      y: {
        field: "quantile",
        type: "quantitative",
        title: "fraction of acquisitions",
        axis: { format: "%" },
      },
      color: { field: "library", type: "nominal", title: null },
    },
  } as TopLevelSpec;
}

/** Grants per contender of each library in one run, with the fair share as a rule. */
export function grantsSpec(groups: GrantGroup[], options: ChartOptions): TopLevelSpec {
  const values = groups.flatMap((g) => {
    const fair = g.grants.reduce((a, b) => a + b, 0) / Math.max(1, g.grants.length);
    const header = g.jain === undefined ? g.name : `${g.name} (Jain ${g.jain.toFixed(3)})`;
    return g.grants.map((grants, contender) => ({ library: header, contender, grants, fair }));
  });
  const width = options.width ?? 800;
  return {
    ...frame(options),
    data: { values },
    facet: { column: { field: "library", type: "nominal", title: null, sort: null } },
    spec: {
      width: Math.max(40, Math.floor(width / Math.max(1, groups.length)) - 24),
      height: options.height ?? 300,
      layer: [
        {
          mark: { type: "bar" },
          encoding: {
            x: { field: "contender", type: "ordinal", title: "contender" },
            y: { field: "grants", type: "quantitative", title: "grants" },
            color: { field: "library", type: "nominal", legend: null },
          },
        },
        {
          mark: { type: "rule", color: TARGET_COLOR, strokeDash: [4, 4] },
          encoding: { y: { field: "fair", aggregate: "mean", type: "quantitative" } },
        },
      ],
    },
  } as TopLevelSpec;
}

/** Renders a Vega-Lite spec to an SVG document. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
