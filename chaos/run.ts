/**
 * `npm run chaos`: every experiment against real servers spawned on loopback, a table of the
 * figures that must be zero, and an exit code that says whether all held (0), not (1), or the
 * command line was wrong (2).
 *
 *   npm run chaos                            all experiments, recorded in docs/chaos.md and docs/chaos-results.json
 *   npm run chaos -- --quick                 shorter faults, one run each
 *   npm run chaos -- --only cluster --runs 10
 */
import { type CliOptions, parseCli, USAGE } from "./cli.js";
import { writeRecord } from "./record.js";
import { failures, table } from "./report.js";
import { runExperiments } from "./runner.js";
import { killAllWorkers } from "./supervise.js";

let cli: CliOptions;
try {
  cli = parseCli(process.argv.slice(2));
} catch (err) {
  console.error(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
  process.exit(2);
}
if (cli.help) {
  console.log(USAGE);
  process.exit(0);
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAllWorkers();
    process.exit(130);
  });
}

const { only, quick, runs, commandTimeoutMs, marginMs } = cli;
const options = { only, quick, runs, commandTimeoutMs, marginMs };
const started = new Date();
console.log(
  `chaos: ${only.length ? only.join(", ") : "all experiments"}${quick ? " (quick)" : ""}`,
);
const results = await runExperiments({
  ...options,
  onRun: (name, run, runs, violations) => {
    if (runs > 1) console.log(`  ${name} run ${run}/${runs}: ${violations} violations`);
  },
  onResult: (r) =>
    console.log(`  ${r.name}: ${r.held ? "held" : "FAILED"} (${r.runs} runs, ${r.durationMs} ms)`),
});
console.log(`\n${table(results)}\n`);
const held = results.every((r) => r.held);
if (!held) console.log(`Violations:\n${failures(results)}\n`);
// A partial run does not replace the run of record unless asked to.
const full = only.length === 0 && !quick && runs === undefined;
if (cli.write ?? full) {
  const files = writeRecord(cli.out, { started, options, results, held });
  console.log(`written: ${files.join(", ")}`);
}
console.log(held ? "all held" : "VIOLATIONS: see above");
process.exit(held ? 0 : 1);
