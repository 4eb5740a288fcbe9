import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { RunContext } from "./experiment.js";
import type { RunReport } from "./probe.js";

export const CRASHES = "crashes";
export const HUNG = "runs that hung";

const WORKER = fileURLToPath(new URL("./worker.ts", import.meta.url));
const running = new Set<ChildProcess>();

/**
 * Runs one run of `name` in a worker process of its own process group, so that killing the
 * group also kills every server it spawned. A worker that exits without a report crashed; one
 * that outlives `timeoutMs` hung and is killed.
 */
export function runInWorker(name: string, ctx: RunContext, timeoutMs: number): Promise<RunReport> {
  return new Promise((resolve) => {
    const child = fork(WORKER, [name, JSON.stringify(ctx)], {
      execArgv: ["--import", "tsx"],
      detached: true,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    running.add(child);
    let report: RunReport | undefined;
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      killGroup(child);
    }, timeoutMs);
    child.on("message", (message) => {
      report = message as RunReport;
    });
    child.once("error", () => {
      // The exit event follows and reports the run as crashed.
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      // Whatever the worker left behind (a server it spawned) goes with its group.
      killGroup(child);
      const result = report ?? emptyReport(ctx);
      result.figures[CRASHES] = result.figures[CRASHES] ?? 0;
      result.figures[HUNG] = result.figures[HUNG] ?? 0;
      if (hung) {
        result.figures[HUNG]++;
        result.details.push(`${HUNG}: no report within ${timeoutMs} ms`);
      } else if (code !== 0 || signal !== null || report === undefined) {
        result.figures[CRASHES]++;
        result.details.push(`${CRASHES}: worker exited with code ${code}, signal ${signal}`);
      }
      resolve(result);
    });
  });
}

function emptyReport(ctx: RunContext): RunReport {
  return {
    operations: 0,
    figures: {},
    details: [],
    worstMs: 0,
    commandTimeoutMs: ctx.commandTimeoutMs,
  };
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // the group is already gone
  }
}

/** Kills every worker still running (on SIGINT): their servers go with them. */
export function killAllWorkers(): void {
  for (const child of running) killGroup(child);
}
