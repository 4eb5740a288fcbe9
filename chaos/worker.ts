/**
 * One run of one experiment, in its own process (started by `supervise.ts`): a crash, a hang or
 * an unhandled rejection is then charged to that run, and its servers die with it.
 * argv: <experiment name> <RunContext as JSON>. Sends a RunReport over IPC, then exits.
 */
import type { Experiment, RunContext } from "./experiment.js";
import { ERRORS, Probe, UNCAUGHT, UNHANDLED } from "./probe.js";

/** Late rejections of calls abandoned at the end still count: give them this long to surface. */
const SETTLE_MS = 500;

const [name = "", json = "{}"] = process.argv.slice(2);
const ctx = JSON.parse(json) as RunContext;
const { experiment } = (await import(`./experiments/${name}.js`)) as { experiment: Experiment };
const probe = new Probe(ctx.commandTimeoutMs, ctx.marginMs, [
  ...experiment.figures,
  UNHANDLED,
  UNCAUGHT,
  ERRORS,
]);

process.on("unhandledRejection", (reason) => probe.violation(UNHANDLED, describe(reason)));
process.on("uncaughtException", (err) => probe.violation(UNCAUGHT, describe(err)));

function describe(err: unknown): string {
  if (err instanceof Error) return `${(err as { code?: string }).code ?? err.name}: ${err.message}`;
  return String(err);
}

try {
  await experiment.run(ctx, probe);
} catch (err) {
  probe.violation(ERRORS, describe(err));
}
await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
process.send?.(probe.report(), () => process.exit(0));
