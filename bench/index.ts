/**
 * Runs every benchmark, each in its own child process (a crash in one does not take the others),
 * then writes summary.md and the SVG charts next to their results in bench/results/<YYYY-MM-DD>/.
 *
 *   npm run bench                          # all of them, about 10 minutes
 *   npm run bench -- --only store,locks    # a subset; the summary also shows today's earlier results
 *   npm run bench -- --quick               # shorter runs, rougher figures
 *   npm run bench -- --report              # no run: summary and charts from today's results
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
} from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs as parseNodeArgs, stripVTControlCharacters } from "node:util";
import { type BenchResults, type BenchRun, machineInfo, writeReport } from "./report.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

interface Bench {
  name: keyof BenchResults;
  /** Script under bench/, run with `node --import tsx`. */
  script: string;
  /** Extra node flags. */
  nodeFlags?: string[];
  /** What the bench writes into the dated folder: its JSON, then optional Markdown. */
  json: string;
  markdown: string;
  /** Kill it after this long (a hung bench must not hold the whole run). */
  timeoutS: number;
}

export const BENCHES: Bench[] = [
  {
    name: "store",
    script: "bench/store.ts",
    json: "store.json",
    markdown: "store.md",
    timeoutS: 900,
  },
  {
    name: "memory",
    script: "bench/memory-scale.ts",
    nodeFlags: ["--expose-gc", "--max-old-space-size=4096"],
    json: "memory-scale.json",
    markdown: "memory-scale.md",
    timeoutS: 600,
  },
  {
    name: "locks",
    script: "bench/locks.ts",
    json: "locks.json",
    markdown: "locks.md",
    timeoutS: 900,
  },
  {
    name: "mcp",
    script: "bench/mcp.ts",
    json: "mcp.json",
    markdown: "mcp.md",
    timeoutS: 900,
  },
  {
    name: "http",
    script: "bench/http.ts",
    json: "http.json",
    markdown: "http.md",
    timeoutS: 900,
  },
  {
    name: "mcpV2",
    script: "bench/mcp-v2.ts",
    json: "mcp-v2.json",
    markdown: "mcp-v2.md",
    timeoutS: 900,
  },
  {
    name: "mcpRouted",
    script: "bench/mcp-routed.ts",
    json: "mcp-routed.json",
    markdown: "mcp-routed.md",
    timeoutS: 900,
  },
];

export interface Cli {
  only: Array<Bench["name"]>;
  quick: boolean;
  help: boolean;
}

/** The command line of `npm run bench`, read with `node:util`'s parseArgs. */
export function parseArgs(argv: string[]): Cli {
  const { values } = parseNodeArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      report: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const known = BENCHES.map((b) => b.name);
  let only: Cli["only"] = values.report ? [] : known;
  if (values.only !== undefined) {
    const names = values.only
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    if (names.length === 0) throw new Error("--only needs a list, e.g. --only store,locks");
    const unknown = names.filter((n) => !(known as string[]).includes(n));
    if (unknown.length > 0) {
      throw new Error(`unknown bench ${unknown.join(", ")}; known: ${known.join(", ")}`);
    }
    only = names as Cli["only"];
  }
  return { only, quick: values.quick, help: values.help };
}

function commandLine(b: Bench, quick: boolean): string {
  const env = quick ? "BENCH_QUICK=1 " : "";
  return `${env}node ${[...(b.nodeFlags ?? []), "--import", "tsx", b.script].join(" ")}`;
}

// ------------------------------------------------------------------------------------------------
// Progress on stderr: one updating line on a terminal, plain lines otherwise (CI logs).

const SPINNER = ["|", "/", "-", "\\"];
const clock = (s: number): string =>
  s < 60
    ? `${Math.floor(s)}s`
    : `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;

class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private timer: NodeJS.Timeout | undefined;
  private frame = 0;
  private started = 0;
  private label = "";
  private lastLine = "";
  private lastPlain = 0;

  begin(label: string, command: string): void {
    this.label = label;
    this.started = performance.now();
    this.lastLine = "";
    this.lastPlain = this.started;
    if (this.tty) {
      this.timer = setInterval(() => this.draw(), 125);
      this.draw();
    } else {
      process.stderr.write(`${label}: ${command}\n`);
      // A heartbeat, so a long quiet bench still shows it is alive in a log.
      this.timer = setInterval(() => {
        if (performance.now() - this.lastPlain >= 30_000) {
          this.lastPlain = performance.now();
          process.stderr.write(`${label}: still running, ${clock(this.elapsed())}\n`);
        }
      }, 5_000);
    }
  }

  /** One line of the child's output. */
  output(line: string): void {
    const clean = stripVTControlCharacters(line).trim();
    if (clean === "") return;
    this.lastLine = clean;
    if (!this.tty) {
      this.lastPlain = performance.now();
      process.stderr.write(`  ${this.label} | ${clean}\n`);
    }
  }

  end(message: string): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty) process.stderr.write("\r\x1b[2K");
    process.stderr.write(`${message}\n`);
  }

  log(message: string): void {
    if (this.tty) process.stderr.write("\r\x1b[2K");
    process.stderr.write(`${message}\n`);
    if (this.tty && this.timer) this.draw();
  }

  elapsed(): number {
    return (performance.now() - this.started) / 1000;
  }

  private draw(): void {
    const columns = process.stderr.columns || 100;
    const head = `${SPINNER[this.frame++ % SPINNER.length]} ${this.label} ${clock(this.elapsed())}`;
    const room = columns - head.length - 4;
    const tail = room > 10 && this.lastLine ? `  ${this.lastLine.slice(0, room)}` : "";
    process.stderr.write(`\r\x1b[2K${head}${tail}`);
  }
}

// ------------------------------------------------------------------------------------------------
// Running one bench

interface Outcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  seconds: number;
}

let current: ChildProcess | undefined;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // The bench runs in its own process group, so its redis-servers and workers go with it.
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

function runBench(b: Bench, quick: boolean, logFile: string, progress: Progress): Promise<Outcome> {
  const started = performance.now();
  const args = [...(b.nodeFlags ?? []), "--import", "tsx", b.script];
  // One switch for every bench (bench/quick.ts).
  const env = { ...process.env, ...(quick ? { BENCH_QUICK: "1" } : {}) };
  const log = createWriteStream(logFile);
  log.write(`$ ${commandLine(b, quick)}\n`);
  const child = spawn(process.execPath, args, {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  current = child;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    progress.log(`${b.name}: no result after ${b.timeoutS} s, stopping it`);
    killGroup(child, "SIGTERM");
    setTimeout(() => killGroup(child, "SIGKILL"), 5_000).unref();
  }, b.timeoutS * 1000);
  for (const stream of [child.stdout, child.stderr]) {
    let pending = "";
    stream?.on("data", (chunk: Buffer) => {
      log.write(chunk);
      pending += chunk.toString();
      const lines = pending.split(/\r?\n|\r/);
      pending = lines.pop() ?? "";
      for (const l of lines) progress.output(l);
    });
    stream?.on("end", () => {
      if (pending) progress.output(pending);
    });
  }
  return new Promise((resolve) => {
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      current = undefined;
      log.end(() =>
        resolve({ exitCode, signal, timedOut, seconds: (performance.now() - started) / 1000 }),
      );
    };
    child.once("error", (err) => {
      log.write(`\n${String(err)}\n`);
      finish(null, null);
    });
    child.once("close", finish);
  });
}

/**
 * Where a bench's output landed: the run's folder, or (when the run went past midnight UTC) the
 * folder of the day it finished, copied back into the run's folder. Only files written since
 * `since` count, so an earlier result is never taken for this run's.
 */
function collect(dir: string, file: string, since: number): string | undefined {
  const fresh = (p: string) => existsSync(p) && statSync(p).mtimeMs >= since;
  const here = path.join(dir, file);
  if (fresh(here)) return here;
  const today = path.join(root, "bench", "results", new Date().toISOString().slice(0, 10), file);
  if (today !== here && fresh(today)) {
    copyFileSync(today, here);
    return here;
  }
  return undefined;
}

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(file, "utf8"));
}

// ------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let cli: Cli;
  try {
    cli = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (cli.help) {
    process.stdout.write(
      [
        `usage: npm run bench -- [--only ${BENCHES.map((b) => b.name).join(",")}] [--quick] [--report]`,
        "  --only    run these benches; today's results of the others still go into the summary",
        "  --quick   shorter runs (rougher figures)",
        "  --report  run nothing: rebuild summary.md and the charts from today's results",
        "",
      ].join("\n"),
    );
    return 0;
  }
  const machine = machineInfo();
  const dir = path.join(root, "bench", "results", machine.date);
  mkdirSync(dir, { recursive: true });
  const rel = (p: string) => path.relative(process.cwd(), p) || ".";
  const command = `npm run bench${argv.length > 0 ? ` -- ${argv.join(" ")}` : ""}`;
  const progress = new Progress();
  const onSignal = (signal: NodeJS.Signals) => {
    if (current) killGroup(current, signal);
    progress.end(`interrupted (${signal})`);
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const selected = BENCHES.filter((b) => cli.only.includes(b.name));
  const results: BenchResults = {};
  const runs: BenchRun[] = [];
  let failed = 0;
  const total = performance.now();
  for (const b of BENCHES) {
    const jsonPath = path.join(dir, b.json);
    const mdPath = path.join(dir, b.markdown);
    const cmd = commandLine(b, cli.quick);
    if (!selected.includes(b)) {
      // Not asked for: today's earlier result, if any, still belongs in the summary.
      if (existsSync(jsonPath)) {
        const at = statSync(jsonPath).mtime.toISOString().slice(11, 16);
        const earlier = loadResult(jsonPath, existsSync(mdPath) ? mdPath : undefined);
        if (earlier) {
          results[b.name] = earlier.data as never;
          runs.push({
            name: b.name,
            command: commandLine(b, false),
            status: "earlier",
            detail: `written at ${at} UTC`,
            ...(earlier.markdown ? { markdown: earlier.markdown } : {}),
          });
        }
      }
      continue;
    }
    const label = `[${selected.indexOf(b) + 1}/${selected.length}] ${b.name}`;
    if (!existsSync(path.join(root, b.script))) {
      progress.log(`${label}: skipped, ${b.script} does not exist`);
      runs.push({ name: b.name, command: cmd, status: "skipped", detail: `${b.script} not found` });
      continue;
    }
    const since = Date.now() - 1000;
    const logFile = path.join(dir, `${b.name}.log`);
    progress.begin(label, cmd);
    const outcome = await runBench(b, cli.quick, logFile, progress);
    // A bench that found a fault (errors under load) exits non-zero after writing its results:
    // those still go into the report, under a FAILED status.
    const json = outcome.timedOut ? undefined : collect(dir, b.json, since);
    const md = json ? collect(dir, b.markdown, since) : undefined;
    const loaded = json ? loadResult(json, md) : undefined;
    if (loaded) results[b.name] = loaded.data as never;
    const ok = loaded !== undefined && outcome.exitCode === 0;
    let why = "";
    if (ok) {
      progress.end(`${label}: done in ${clock(outcome.seconds)} -> ${rel(json as string)}`);
    } else {
      failed++;
      why = outcome.timedOut
        ? `stopped after ${b.timeoutS} s`
        : outcome.exitCode !== 0
          ? `exit ${outcome.exitCode ?? outcome.signal}${loaded ? ", results written" : ""}`
          : `wrote no ${b.json}`;
      progress.end(
        `${label}: FAILED (${why}) after ${clock(outcome.seconds)}; log: ${rel(logFile)}`,
      );
    }
    runs.push({
      name: b.name,
      command: cmd,
      status: ok ? "ok" : "failed",
      seconds: outcome.seconds,
      ...(ok ? {} : { detail: `${why}, see ${b.name}.log` }),
      ...(loaded?.markdown ? { markdown: loaded.markdown } : {}),
    });
  }

  const written = await writeReport(dir, results, { command, machine, quick: cli.quick, runs });
  process.stderr.write(
    `\nall benches in ${clock((performance.now() - total) / 1000)}${failed ? `, ${failed} failed` : ""}\n`,
  );
  process.stdout.write(`results in ${rel(dir)}/\n`);
  for (const f of written) process.stdout.write(`  ${rel(f)}\n`);
  return failed > 0 ? 1 : 0;
}

/** A bench's JSON and (when given) Markdown; undefined when the JSON does not parse. */
function loadResult(
  json: string,
  md: string | undefined,
): { data: unknown; markdown?: string } | undefined {
  try {
    const data = readJson(json);
    return md === undefined ? { data } : { data, markdown: readFileSync(md, "utf8") };
  } catch {
    return undefined;
  }
}

const isMain =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) process.exitCode = await main();
