import type { Probe } from "./probe.js";

/** What every run of an experiment gets. */
export interface RunContext {
  /** A short run: fewer, shorter faults, for `--quick` and `npm test`. */
  quick: boolean;
  /** 0-based index of this run among the experiment's runs. */
  run: number;
  commandTimeoutMs: number;
  marginMs: number;
}

/** One experiment: a deployment, faults injected into it, and figures that must stay zero. */
export interface Experiment {
  /** Figures this experiment checks, declared so that a zero is reported as checked. */
  figures: string[];
  run(ctx: RunContext, probe: Probe): Promise<void>;
}
