import { CATALOG, type CatalogEntry } from "./catalog.js";
import { type ExperimentResult, summarize } from "./report.js";
import { runInWorker } from "./supervise.js";

export interface RunOptions {
  /** Experiment names; all when empty. */
  only: string[];
  quick: boolean;
  /** Runs of every selected experiment; default: the catalog's (1 each under `quick`). */
  runs?: number;
  commandTimeoutMs: number;
  marginMs: number;
  onResult?: (result: ExperimentResult) => void;
  /** After each run: the experiment, the run (1-based), the runs, its violations. */
  onRun?: (name: string, run: number, runs: number, violations: number) => void;
}

export function select(only: string[]): CatalogEntry[] {
  const unknown = only.filter((n) => !CATALOG.some((e) => e.name === n));
  if (unknown.length > 0) {
    const known = CATALOG.map((e) => e.name).join(", ");
    throw new Error(`unknown experiment ${unknown.join(", ")} (known: ${known})`);
  }
  return only.length === 0 ? [...CATALOG] : CATALOG.filter((e) => only.includes(e.name));
}

/** Runs the selected experiments one after another, each run in its own worker process. */
export async function runExperiments(options: RunOptions): Promise<ExperimentResult[]> {
  const results: ExperimentResult[] = [];
  for (const entry of select(options.only)) {
    const runs = options.runs ?? (options.quick ? 1 : entry.runs);
    const start = performance.now();
    const reports = [];
    for (let run = 0; run < runs; run++) {
      const ctx = {
        quick: options.quick,
        run,
        commandTimeoutMs: options.commandTimeoutMs,
        marginMs: options.marginMs,
      };
      const report = await runInWorker(entry.name, ctx, entry.timeoutMs);
      reports.push(report);
      const violations = Object.values(report.figures).reduce((a, b) => a + b, 0);
      options.onRun?.(entry.name, run + 1, runs, violations);
    }
    const result = summarize(entry, reports, Math.round(performance.now() - start));
    options.onResult?.(result);
    results.push(result);
  }
  return results;
}
