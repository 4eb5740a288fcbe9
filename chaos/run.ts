/**
 * `npm run chaos`: every experiment against real servers spawned on loopback, a table of the
 * figures that must be zero, and an exit code that says whether all held.
 *
 *   npm run chaos                      all experiments, written to docs/chaos.md and docs/chaos-results.json
 *   npm run chaos -- --quick           shorter faults, one run each
 *   npm run chaos -- --only cluster --runs 5
 */
import { parseArgs } from "node:util";
import { writeRecord } from "./record.js";
import { table } from "./report.js";
import { runExperiments } from "./runner.js";
import { killAllWorkers } from "./supervise.js";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string", multiple: true, default: [] },
    runs: { type: "string" },
    "command-timeout": { type: "string", default: "1000" },
    margin: { type: "string", default: "500" },
    write: { type: "boolean" },
    out: { type: "string", default: "docs" },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  console.log(
    "npm run chaos -- [--quick] [--only <name>[,<name>]] [--runs N] [--command-timeout ms] [--margin ms] [--write] [--out dir]",
  );
  process.exit(0);
}

function positive(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} expects a positive integer`);
  return n;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAllWorkers();
    process.exit(130);
  });
}

const only = values.only.flatMap((v) => v.split(",")).filter(Boolean);
const options = {
  only,
  quick: values.quick,
  runs: positive("runs", values.runs),
  commandTimeoutMs: positive("command-timeout", values["command-timeout"]) ?? 1000,
  marginMs: positive("margin", values.margin) ?? 500,
};
const started = new Date();
console.log(
  `chaos: ${only.length ? only.join(", ") : "all experiments"}${options.quick ? " (quick)" : ""}`,
);
const results = await runExperiments({
  ...options,
  onResult: (r) =>
    console.log(`  ${r.name}: ${r.held ? "held" : "FAILED"} (${r.runs} runs, ${r.durationMs} ms)`),
});
console.log(`\n${table(results)}\n`);
const held = results.every((r) => r.held);
for (const r of results.filter((x) => !x.held)) {
  console.log(`${r.name} violations:\n${r.details.map((d) => `  ${d}`).join("\n")}`);
}
// A partial run does not replace the run of record unless asked to.
const full = only.length === 0 && !options.quick && options.runs === undefined;
if (values.write ?? full) {
  const files = writeRecord(values.out, { started, options, results, held });
  console.log(`written: ${files.join(", ")}`);
}
console.log(held ? "all held" : "VIOLATIONS: see above");
process.exit(held ? 0 : 1);
