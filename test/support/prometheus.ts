/**
 * Test harness for the operations files: a real Prometheus on a free port (its TSDB in a temporary
 * directory), promtool, and helpers that pull the PromQL out of the Grafana dashboard.
 *
 * The binaries are required: a missing `prometheus`, `promtool` or `nginx` fails the suite.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { freePort } from "./redis.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const DASHBOARD_PATH = path.join(ROOT, "grafana/dashboards/mcp-session-store.json");

/** Absolute path of a required binary (PATH, then /usr/bin, /usr/sbin); throws when missing. */
export function requireBinary(name: string): string {
  const dirs = [
    ...(process.env.PATH ?? "").split(path.delimiter),
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
  ];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${name} not found: the operations tests need a real ${name} binary`);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a binary to completion (never throws on a non-zero exit: the caller asserts the code). */
export function run(
  file: string,
  args: string[],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        cwd: options.cwd ?? ROOT,
        timeout: options.timeoutMs ?? 30_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err && typeof (err as { code?: unknown }).code !== "number") {
          reject(err);
          return;
        }
        const code = err ? Number((err as { code: number }).code) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

export function promtool(args: string[], cwd?: string): Promise<RunResult> {
  return run(requireBinary("promtool"), args, cwd === undefined ? {} : { cwd });
}

// ---------------------------------------------------------------------------------------------
// Dashboard

export interface DashboardTarget {
  refId: string;
  expr: string;
  format?: string;
  instant?: boolean;
  exemplar?: boolean;
  legendFormat?: string;
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { h: number; w: number; x: number; y: number };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: DashboardTarget[];
  panels?: DashboardPanel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: DashboardPanel[];
  templating: { list: Array<Record<string, unknown> & { name: string; type: string }> };
  [key: string]: unknown;
}

export function loadDashboard(file = DASHBOARD_PATH): Dashboard {
  return JSON.parse(readFileSync(file, "utf8")) as Dashboard;
}

/** Every panel (rows flattened: collapsed rows keep theirs in `panels`), rows excluded. */
export function dashboardPanels(dashboard: Dashboard): DashboardPanel[] {
  const out: DashboardPanel[] = [];
  for (const panel of dashboard.panels) {
    if (panel.type === "row") out.push(...(panel.panels ?? []));
    else out.push(panel);
  }
  return out;
}

/** The dashboard's template variables (all multi-value, "All" sends `.*`). */
export type DashboardVariable = "job" | "instance" | "backend" | "operation";

/**
 * A panel expression as Prometheus receives it: Grafana variables replaced by what Grafana sends
 * with "All" selected (or by the regex given in `values`, as a selection would), and the interval
 * macros by fixed durations.
 */
export function substituteVariables(
  expr: string,
  intervals: { rateInterval: string; interval: string; range: string } = {
    rateInterval: "5s",
    interval: "1s",
    range: "1m",
  },
  values: Partial<Record<DashboardVariable, string>> = {},
): string {
  return expr
    .replaceAll("$__rate_interval", intervals.rateInterval)
    .replaceAll("$__interval", intervals.interval)
    .replaceAll("$__range", intervals.range)
    .replace(
      /\$\{?(job|instance|backend|operation)\}?/g,
      (_, name: DashboardVariable) => values[name] ?? ".*",
    );
}

const PROMQL_KEYWORDS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "count",
  "stddev",
  "stdvar",
  "topk",
  "bottomk",
  "quantile",
  "count_values",
  "group",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "inf",
  "nan",
  "le",
]);

/**
 * Metric names a PromQL expression selects: identifiers that are neither functions (followed by
 * `(`), keywords, label names (inside `{}`/`by ()`), nor inside strings.
 */
export function metricNamesIn(expr: string): string[] {
  // Drop strings, label matchers and grouping clauses, then range/offset durations.
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\boffset\s+-?[0-9a-z]+/gi, " ")
    // numbers and durations (0.99, 1e-9, 5m)
    .replace(/(^|[^a-zA-Z0-9_:])[0-9][0-9a-zA-Z.+-]*/g, "$1 ");
  const names = new Set<string>();
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = match[0];
    const after = stripped.slice((match.index ?? 0) + word.length).trimStart();
    if (after.startsWith("(")) continue;
    if (PROMQL_KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}

/** `x_bucket`, `x_sum`, `x_count` of a histogram/summary map to `x`. */
export function baseMetricName(name: string, known: ReadonlySet<string>): string {
  if (known.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m?.[1] !== undefined && known.has(m[1])) return m[1];
  return name;
}

/** Names and types from the `# TYPE` lines of a Prometheus text exposition. */
export function metricTypesFromExposition(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (m[1] !== undefined && m[2] !== undefined) types.set(m[1], m[2]);
  }
  return types;
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus

export interface PrometheusHandle {
  readonly url: string;
  readonly port: number;
  /** Instant query; returns the `data` of the API answer, throws on an API error. */
  query(expr: string): Promise<{
    resultType: string;
    result: Array<{ metric: Record<string, string>; value: [number, string] }>;
  }>;
  /** Range query (`start`/`end` in epoch seconds, `step` in seconds), as a dashboard panel runs. */
  queryRange(
    expr: string,
    range: { start: number; end: number; step: number },
  ): Promise<{
    resultType: string;
    result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }>;
  }>;
  /** GET an API path (e.g. `/api/v1/rules`) and return its `data`. */
  api<T = unknown>(pathAndQuery: string): Promise<T>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

/**
 * Starts Prometheus with `config` (a prometheus.yml object; `rule_files` must be absolute) on a
 * free port, TSDB in a temporary directory, and waits for /-/ready (polling, bounded).
 */
export async function startPrometheus(
  config: Record<string, unknown>,
  options: { readyTimeoutMs?: number; extraArgs?: string[] } = {},
): Promise<PrometheusHandle> {
  const binary = requireBinary("prometheus");
  const dir = mkdtempSync(path.join(os.tmpdir(), "ops-prometheus-"));
  const configFile = path.join(dir, "prometheus.yml");
  writeFileSync(configFile, stringify(config));
  const port = await freePort();
  const child = spawn(
    binary,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--web.enable-remote-write-receiver",
      "--enable-feature=exemplar-storage",
      "--log.level=warn",
      ...(options.extraArgs ?? []),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  if (!exitHook) {
    exitHook = true;
    process.on("exit", () => {
      for (const c of live) c.kill("SIGKILL");
    });
  }
  live.add(child);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8192);
  });
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true;
      live.delete(child);
      resolve();
    });
  });

  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exitedPromise;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`prometheus exited before it was ready:\n${stderr}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready within the timeout:\n${stderr}`);
    }
    await delay(100);
  }

  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const res = await fetch(`${url}${pathAndQuery}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success")
      throw new Error(`prometheus ${pathAndQuery}: ${body.error ?? res.status}`);
    return body.data;
  };
  return {
    url,
    port,
    api,
    query: (expr) => api(`/api/v1/query?query=${encodeURIComponent(expr)}`),
    queryRange: (expr, { start, end, step }) =>
      api(
        `/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${start}&end=${end}&step=${step}`,
      ),
    stop,
  };
}
