import { parseArgs } from "node:util";
import { CATALOG } from "./catalog.js";
import { select } from "./runner.js";

export const USAGE = `npm run chaos -- [options]
  --quick               shorter faults, one run of each experiment
  --only <name>[,...]   run only these (${CATALOG.map((e) => e.name).join(", ")})
  --runs N              runs of each selected experiment (default: 1, Cluster 5)
  --command-timeout ms  the stores' commandTimeout (default 1000)
  --margin ms           how late past commandTimeout a call may answer (default 500)
  --write               write docs/ even for a partial run (a full run always does)
  --out dir             where to write chaos.md and chaos-results.json (default docs)`;

export interface CliOptions {
  only: string[];
  quick: boolean;
  runs: number | undefined;
  commandTimeoutMs: number;
  marginMs: number;
  write: boolean | undefined;
  out: string;
  help: boolean;
}

function positive(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} expects a positive integer`);
  return n;
}

/** The command line, checked: throws an Error whose message is fit to print. */
export function parseCli(args: string[]): CliOptions {
  const { values } = parseArgs({
    args,
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
  const only = values.only.flatMap((v) => v.split(",")).filter(Boolean);
  select(only);
  return {
    only,
    quick: values.quick,
    runs: positive("runs", values.runs),
    commandTimeoutMs: positive("command-timeout", values["command-timeout"]) ?? 1000,
    marginMs: positive("margin", values.margin) ?? 500,
    write: values.write,
    out: values.out,
    help: values.help,
  };
}
