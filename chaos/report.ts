import type { CatalogEntry } from "./catalog.js";
import type { RunReport } from "./probe.js";

const DETAILS_PER_FIGURE = 4;

/** All runs of one experiment, summed. */
export interface ExperimentResult {
  name: string;
  setup: string;
  runs: number;
  operations: number;
  /** Every checked figure, summed over the runs; all must be zero. */
  figures: Record<string, number>;
  violations: number;
  worstMs: number;
  commandTimeoutMs: number;
  held: boolean;
  /** The first violations, prefixed with their run. */
  details: string[];
  /** Violations of each run, in order: an intermittent defect shows in some runs only. */
  violationsPerRun: number[];
  durationMs: number;
}

export function summarize(
  entry: CatalogEntry,
  reports: RunReport[],
  durationMs: number,
): ExperimentResult {
  const figures: Record<string, number> = {};
  const details: string[] = [];
  const shown = new Map<string, number>();
  for (const [i, r] of reports.entries()) {
    for (const [k, v] of Object.entries(r.figures)) figures[k] = (figures[k] ?? 0) + v;
    for (const d of r.details) {
      // A figure that fires in every run must not push the others out of the report.
      const figure = d.slice(0, d.indexOf(":"));
      const n = (shown.get(figure) ?? 0) + 1;
      shown.set(figure, n);
      if (n <= DETAILS_PER_FIGURE) details.push(`run ${i + 1}: ${d}`);
    }
  }
  const violations = Object.values(figures).reduce((a, b) => a + b, 0);
  return {
    name: entry.name,
    setup: entry.setup,
    runs: reports.length,
    operations: reports.reduce((a, r) => a + r.operations, 0),
    figures,
    violations,
    worstMs: Math.max(0, ...reports.map((r) => r.worstMs)),
    commandTimeoutMs: Math.max(0, ...reports.map((r) => r.commandTimeoutMs)),
    held: violations === 0 && reports.length > 0,
    details,
    violationsPerRun: reports.map((r) => Object.values(r.figures).reduce((a, b) => a + b, 0)),
    durationMs,
  };
}

function violationCell(r: ExperimentResult): string {
  const nonZero = Object.entries(r.figures).filter(([, v]) => v > 0);
  if (nonZero.length === 0) return "0";
  return `${r.violations} (${nonZero.map(([k, v]) => `${k}: ${v}`).join("; ")})`;
}

/** The table, as Markdown (also readable in a terminal). */
export function table(results: ExperimentResult[]): string {
  const rows = [
    "| experiment | setup | runs | operations | violations | worst call / commandTimeout | verdict |",
    "| --- | --- | ---: | ---: | --- | --- | --- |",
  ];
  for (const r of results) {
    rows.push(
      `| ${r.name} | ${r.setup} | ${r.runs} | ${r.operations} | ${violationCell(r)} | ` +
        `${r.worstMs} ms / ${r.commandTimeoutMs} ms | ${r.held ? "held" : "FAILED"} |`,
    );
  }
  return rows.join("\n");
}

/** The first violations of every failed experiment. */
export function failures(results: ExperimentResult[]): string {
  const lines: string[] = [];
  for (const r of results.filter((x) => !x.held)) {
    const failed = r.violationsPerRun.filter((v) => v > 0).length;
    lines.push(`- ${r.name} (violations in ${failed} of ${r.runs} runs):`);
    for (const d of r.details) lines.push(`  - ${d}`);
  }
  return lines.join("\n");
}

/** Every figure each experiment checked (all must be zero). */
export function checkedFigures(results: ExperimentResult[]): string {
  return results.map((r) => `- ${r.name}: ${Object.keys(r.figures).join(", ")}`).join("\n");
}
