import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { checkedFigures, type ExperimentResult, failures, table } from "./report.js";
import type { RunOptions } from "./runner.js";

const BIOME = fileURLToPath(new URL("../node_modules/.bin/biome", import.meta.url));

interface Record {
  started: Date;
  options: Omit<RunOptions, "onResult">;
  results: ExperimentResult[];
  held: boolean;
}

function command(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "unknown";
  }
}

function machine() {
  const src = command("git", ["status", "--porcelain", "--", "src"]);
  return {
    cores: Number(command("nproc", [])) || os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? "unknown",
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    redis: command("redis-server", ["--version"]).match(/v=(\S+)/)?.[1] ?? "unknown",
    commit: command("git", ["rev-parse", "--short", "HEAD"]),
    // The commit alone does not describe the code when src/ has uncommitted changes.
    srcModified: src !== "" && src !== "unknown",
  };
}

function flags(options: Record["options"]): string {
  const parts = ["npm run chaos"];
  const extra: string[] = [];
  if (options.quick) extra.push("--quick");
  if (options.only.length) extra.push(`--only ${options.only.join(",")}`);
  if (options.runs !== undefined) extra.push(`--runs ${options.runs}`);
  if (extra.length) parts.push("--", ...extra);
  return parts.join(" ");
}

/** Writes `chaos.md` and `chaos-results.json` into `dir`; returns their paths. */
export function writeRecord(dir: string, record: Record): string[] {
  const m = machine();
  const finished = new Date();
  const minutes = ((finished.getTime() - record.started.getTime()) / 60_000).toFixed(1);
  const md = [
    "# Chaos run",
    "",
    `\`${flags(record.options)}\`, ${record.started.toISOString()}, ${minutes} min: ` +
      `**${record.held ? "all held" : "violations found"}** (exit code ${record.held ? 0 : 1}).`,
    "",
    `Machine: ${m.cores} cores (${m.cpu}), ${m.os}, Node ${m.node}, redis-server ${m.redis}. ` +
      `Commit ${m.commit}${m.srcModified ? " with uncommitted changes in src/" : ""}.`,
    "",
    `Every server is a real \`redis-server\` on a free loopback port, spawned and killed by pid. ` +
      `commandTimeout ${record.options.commandTimeoutMs} ms; a call answered more than ` +
      `${record.options.marginMs} ms after it (or after its own waitTimeout) is a violation. ` +
      "Each run is a separate process: an unhandled rejection, a crash or a hang is charged to it.",
    "",
    table(record.results),
    "",
    record.held ? "" : `## Violations\n\n${failures(record.results)}\n`,
    "## Run it",
    "",
    "`npm run chaos` runs every experiment and rewrites this page and `chaos-results.json`; it " +
      "exits 0 only when every figure below is zero. `--quick` shortens the faults and runs each " +
      "experiment once, `--only <name>[,<name>]` selects experiments, `--runs N` repeats each, " +
      "`--write` records a partial run. It needs `redis-server` and `redis-cli` on PATH and " +
      "takes a few minutes on 2 cores.",
    "",
    "## Figures checked (each must be zero)",
    "",
    checkedFigures(record.results),
    "",
  ].join("\n");
  mkdirSync(dir, { recursive: true });
  const mdFile = path.join(dir, "chaos.md");
  const jsonFile = path.join(dir, "chaos-results.json");
  writeFileSync(mdFile, md.replace(/\n{3,}/g, "\n\n"));
  const json = {
    started: record.started.toISOString(),
    finished: finished.toISOString(),
    command: flags(record.options),
    machine: m,
    options: record.options,
    held: record.held,
    results: record.results,
  };
  writeFileSync(jsonFile, `${JSON.stringify(json, null, 2)}\n`);
  // `npm run lint` checks JSON with Biome: leave the file as Biome formats it, so a recorded
  // run never fails the lint. Best effort: without Biome the file is still valid JSON.
  command(BIOME, ["format", "--write", jsonFile]);
  return [mdFile, jsonFile];
}
