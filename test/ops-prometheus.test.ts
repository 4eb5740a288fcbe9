/**
 * Prometheus config and alert rules (promtool), their runbooks, and the dashboard against a real
 * Prometheus scraping a process that serves the library's metrics under load with faults.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  type DashboardPanel,
  dashboardPanels,
  loadDashboard,
  type PrometheusHandle,
  promtool,
  ROOT,
  startPrometheus,
  substituteVariables,
} from "./support/prometheus.js";
import { type RedisNode, startRedisNodes } from "./support/redis.js";

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const alertsFile = path.join(ROOT, "prometheus/alerts.yml");
const alertRules = (
  parse(readFileSync(alertsFile, "utf8")) as { groups: Array<{ rules: AlertRule[] }> }
).groups.flatMap((g) => g.rules);
const operationsDoc = readFileSync(path.join(ROOT, "docs/operations.md"), "utf8");

/** GitHub's heading anchor: lowercase, punctuation dropped, spaces to dashes. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6}\s+(.+)$/gm)) {
    const text = (m[1] ?? "").trim().toLowerCase().replace(/`/g, "");
    anchors.add(text.replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-"));
  }
  return anchors;
}

describe("prometheus config and rules (promtool)", () => {
  it("prometheus.yml is valid and loads the alert rules", async () => {
    const result = await promtool(["check", "config", "prometheus/prometheus.yml"]);
    expect(result.stdout + result.stderr).toContain("SUCCESS: 1 rule files found");
    expect(result.code).toBe(0);
  });

  it("every alert unit test passes (promtool test rules)", async () => {
    const result = await promtool(["test", "rules", "prometheus/alerts.test.yml"]);
    expect(result.stdout + result.stderr).toContain("SUCCESS");
    expect(result.code).toBe(0);
  });

  it("covers the required alerts, each with a firing and a silent unit test", () => {
    const names = alertRules.map((r) => r.alert);
    expect(names).toEqual(
      expect.arrayContaining([
        "MCPSessionStoreHighErrorRatio",
        "MCPSessionStoreHighLatencyP99",
        "MCPSessionStoreLockTimeouts",
        "MCPSessionStoreLockLeaseLost",
        "MCPSessionStoreMemoryFallback",
        "MCPSessionStoreRedlockNodeErrors",
        "MCPSessionStoreTargetDown",
      ]),
    );
    const tests = (
      parse(readFileSync(path.join(ROOT, "prometheus/alerts.test.yml"), "utf8")) as {
        tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
      }
    ).tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const name of names) {
      const cases = tests.filter((t) => t.alertname === name);
      expect(
        cases.some((t) => (t.exp_alerts ?? []).length > 0),
        `${name} fires in a test`,
      ).toBe(true);
      expect(
        cases.some((t) => (t.exp_alerts ?? []).length === 0),
        `${name} stays silent in a test`,
      ).toBe(true);
    }
  });

  it("gives every alert a severity, a summary and a runbook section in docs/operations.md", () => {
    const anchors = anchorsOf(operationsDoc);
    for (const rule of alertRules) {
      expect(["warning", "critical"], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      const anchor = rule.alert.toLowerCase();
      expect(rule.annotations?.runbook_url, rule.alert).toBe(`docs/operations.md#${anchor}`);
      expect(anchors.has(anchor), `runbook heading "${rule.alert}"`).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * Panels that may show nothing against the fixture, and why (their descriptions say so too).
 * The fixture creates no MCP tasks.
 */
const MAY_BE_EMPTY: Record<string, string> = {
  "Tasks by status": "no task-augmented tool call in the fixture",
};

/** Panels that only show data when the injected faults really reach the metrics. */
const MUST_BE_NONZERO = [
  "Error ratio",
  "Errors per second by code",
  "Lock timeouts and retries",
  "Lost leases",
  "Redlock node errors",
  "Lock contention ratio",
];

function startFixture(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", path.join(ROOT, "test/fixtures/ops-metrics-server.ts")],
    {
      cwd: ROOT,
      env: { ...process.env, ...env, PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8192);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`fixture did not start within 30 s:\n${stderr}`));
    }, 30_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`fixture exited with ${code}:\n${stderr}`));
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once("line", (line) => {
      clearTimeout(timer);
      child.removeAllListeners("exit");
      resolve({ child, port: (JSON.parse(line) as { port: number }).port });
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(killer);
}

describe("dashboard and alerts against a real Prometheus", () => {
  let nodes: RedisNode[] = [];
  let fixture: { child: ChildProcess; port: number } | undefined;
  let prometheus: PrometheusHandle | undefined;

  beforeAll(async () => {
    nodes = await startRedisNodes(3);
    fixture = await startFixture({
      REDIS_URL: nodes[0]?.url ?? "",
      LOCK_NODES: nodes.map((n) => n.url).join(","),
    });
    // The repository's prometheus.yml, pointed at the fixture and scraping every second.
    const config = parse(readFileSync(path.join(ROOT, "prometheus/prometheus.yml"), "utf8")) as {
      global: Record<string, unknown>;
      rule_files: string[];
      scrape_configs: Array<{
        job_name: string;
        static_configs: Array<{ targets: string[] }>;
        [k: string]: unknown;
      }>;
    };
    config.global.scrape_interval = "1s";
    config.global.evaluation_interval = "1s";
    config.rule_files = config.rule_files.map((f) => path.join(ROOT, "prometheus", f));
    const app = config.scrape_configs.find((c) => c.job_name === "mcp-server");
    if (!app) throw new Error("prometheus.yml has no mcp-server job");
    app.scrape_interval = "1s";
    app.scrape_timeout = "1s";
    app.static_configs = [{ targets: [`127.0.0.1:${fixture.port}`] }];
    config.scrape_configs = [app];
    prometheus = await startPrometheus(config);
    // One Redlock node of three goes down: locks keep their quorum, node errors get counted.
    await nodes[2]?.kill();
  }, 90_000);

  afterAll(async () => {
    await prometheus?.stop();
    if (fixture) await stopChild(fixture.child);
    await Promise.all(nodes.map((n) => n.stop()));
  }, 60_000);

  it("scrapes the app target and loads every alert rule", async () => {
    const p = prometheus as PrometheusHandle;
    const deadline = Date.now() + 20_000;
    let up: string | undefined;
    while (Date.now() < deadline) {
      up = (await p.query('up{job="mcp-server"}')).result[0]?.value[1];
      if (up === "1") break;
      await delay(250);
    }
    expect(up).toBe("1");
    // Both backends are exercised: memory, and Redis with Redlock over three nodes.
    const backends = await p.query("count by (backend, mode) (mcp_session_store_backend_info)");
    expect(backends.result.map((r) => `${r.metric.backend}/${r.metric.mode}`).sort()).toEqual([
      "memory/memory",
      "redis/standalone",
    ]);
    const rules = await p.api<{
      groups: Array<{ rules: Array<{ name: string; health: string; type: string }> }>;
    }>("/api/v1/rules");
    const loaded = rules.groups.flatMap((g) => g.rules).filter((r) => r.type === "alerting");
    expect(loaded.map((r) => r.name).sort()).toEqual(alertRules.map((r) => r.alert).sort());
    // "ok" once evaluated against real series (an expression error would say "err").
    const deadlineRules = Date.now() + 10_000;
    let health = loaded.map((r) => r.health);
    while (health.some((h) => h !== "ok") && Date.now() < deadlineRules) {
      await delay(250);
      const again = await p.api<{
        groups: Array<{ rules: Array<{ health: string; type: string }> }>;
      }>("/api/v1/rules");
      health = again.groups
        .flatMap((g) => g.rules)
        .filter((r) => r.type === "alerting")
        .map((r) => r.health);
    }
    expect(health.every((h) => h === "ok")).toBe(true);
  }, 40_000);

  it("every panel query returns data (fault panels non-zero)", async () => {
    const p = prometheus as PrometheusHandle;
    const panels = dashboardPanels(loadDashboard());
    for (const title of Object.keys(MAY_BE_EMPTY)) {
      const panel = panels.find((x) => x.title === title);
      expect(panel, title).toBeDefined();
      expect(panel?.description, `${title} says when it is empty`).toMatch(/\bEmpty\b/);
    }
    for (const title of MUST_BE_NONZERO)
      expect(
        panels.some((x) => x.title === title),
        title,
      ).toBe(true);

    type Status = { panel: DashboardPanel; refId: string; series: number; nonzero: boolean };
    const evaluate = async (): Promise<Status[]> => {
      const out: Status[] = [];
      for (const panel of panels) {
        for (const t of panel.targets ?? []) {
          const data = await p.query(substituteVariables(t.expr));
          const values = data.result.map((r) => Number(r.value[1]));
          out.push({
            panel,
            refId: t.refId,
            series: data.result.length,
            nonzero: values.some((v) => Number.isFinite(v) && v !== 0),
          });
        }
      }
      return out;
    };
    const missing = (statuses: Status[]): string[] => {
      const problems: string[] = [];
      for (const panel of panels) {
        if (panel.title in MAY_BE_EMPTY) continue;
        const mine = statuses.filter((s) => s.panel === panel);
        // A panel has data when any of its queries has (p50/p95/p99 of one panel share series).
        if (!mine.some((s) => s.series > 0)) problems.push(`${panel.title}: no series`);
        else if (MUST_BE_NONZERO.includes(panel.title) && !mine.some((s) => s.nonzero)) {
          problems.push(`${panel.title}: only zeros`);
        }
      }
      return problems;
    };
    // Rates need a few scrapes; poll (bounded) instead of sleeping a fixed time.
    const deadline = Date.now() + 45_000;
    let problems = missing(await evaluate());
    while (problems.length > 0 && Date.now() < deadline) {
      await delay(1_000);
      problems = missing(await evaluate());
    }
    expect(problems).toEqual([]);
  }, 60_000);

  it("stores trace-id exemplars for the latency histograms the panels show", async () => {
    const p = prometheus as PrometheusHandle;
    const query = encodeURIComponent("mcp_session_store_operation_duration_seconds_bucket");
    type Exemplars = Array<{
      seriesLabels: Record<string, string>;
      exemplars: Array<{ labels: Record<string, string> }>;
    }>;
    const deadline = Date.now() + 20_000;
    let found: Exemplars = [];
    while (Date.now() < deadline) {
      const now = Date.now() / 1000;
      found = await p.api<Exemplars>(
        `/api/v1/query_exemplars?query=${query}&start=${now - 300}&end=${now + 5}`,
      );
      if (found.some((s) => s.exemplars.length > 0)) break;
      await delay(500);
    }
    const labels = found.flatMap((s) => s.exemplars.map((e) => e.labels));
    expect(labels.length).toBeGreaterThan(0);
    expect(labels[0]?.trace_id).toMatch(/^[0-9a-f]{32}$/);
  }, 30_000);
});
