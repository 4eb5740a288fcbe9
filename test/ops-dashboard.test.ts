/**
 * The Grafana dashboard: lint rules, every queried metric exists in what the library (and the
 * prom-client default metrics) export, and every query parses in a real promtool.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { collectDefaultMetrics, Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createMemorySessionStore, instrument } from "../src/index.js";
import { mcpMetrics } from "../src/mcp/support.js";
import { registerRedisBackedServices } from "../src/mcp/v2/index.js";
import { httpRequestCounter } from "../src/server/http-metrics.js";
import {
  baseMetricName,
  DASHBOARD_PATH,
  type DashboardPanel,
  dashboardPanels,
  loadDashboard,
  metricNamesIn,
  metricTypesFromExposition,
  promtool,
  ROOT,
  substituteVariables,
} from "./support/prometheus.js";

const dashboard = loadDashboard();
const panels = dashboardPanels(dashboard);
const ALLOWED_TYPES = new Set(["timeseries", "stat", "heatmap", "bargauge", "table"]);
const REQUIRED_VARIABLES = ["datasource", "job", "instance", "backend", "operation"];
const ROWS = [
  "Overview",
  "Operations",
  "Locks",
  "MCP sessions",
  "MCP 2026-07-28",
  "Node.js runtime",
];

/** What a process serving the library's metrics exposes, read from a real registry. */
async function exportedMetricTypes(): Promise<Map<string, string>> {
  const registry = new Registry();
  const store = instrument(createMemorySessionStore({ instrumentation: false }), { registry });
  try {
    mcpMetrics(registry);
    // The reference server's HTTP answers (its dashboard panel reads them).
    httpRequestCounter(registry);
    collectDefaultMetrics({ register: registry });
    // The protocol 2026-07-28 services: bus, handles, request states, tasks.
    const v2 = await registerRedisBackedServices({
      sessionStore: store,
      registry,
      requestStates: { keys: { current: "dashboard-test-key-0123456789abcdefghij" } },
    });
    try {
      return metricTypesFromExposition(await registry.metrics());
    } finally {
      await v2.close();
    }
  } finally {
    await store.disconnect();
  }
}

function exprs(panel: DashboardPanel): string[] {
  return (panel.targets ?? []).map((t) => t.expr);
}

describe("dashboard model", () => {
  it("is a classic JSON model with a stable uid and a current schemaVersion", () => {
    expect(dashboard.uid).toBe("mcp-session-store");
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.schemaVersion).toBeLessThanOrEqual(42);
    expect(dashboard).not.toHaveProperty("__inputs");
    expect(dashboard).not.toHaveProperty("__requires");
    expect(dashboard).not.toHaveProperty("id");
    const raw = readFileSync(DASHBOARD_PATH, "utf8");
    expect(raw).not.toMatch(/\$\{DS_[A-Z0-9_]+\}/);
  });

  it("has a datasource variable and job, instance, backend, operation query variables", () => {
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    for (const name of REQUIRED_VARIABLES) expect(vars.has(name), name).toBe(true);
    expect(vars.get("datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
    for (const name of REQUIRED_VARIABLES.slice(1)) {
      const v = vars.get(name);
      expect(v, name).toMatchObject({ type: "query", datasource: { uid: "$" + "{datasource}" } });
      expect(String(v?.definition), name).toMatch(/^label_values\(/);
    }
  });

  it("uses only allowed panel types, each with a unit, a description and the datasource variable", () => {
    expect(panels.length).toBeGreaterThanOrEqual(25);
    const dsVariable = "$" + "{datasource}";
    const problems: string[] = [];
    for (const p of panels) {
      const where = `panel ${p.id} "${p.title}"`;
      if (!ALLOWED_TYPES.has(p.type)) problems.push(`${where}: type ${p.type}`);
      if (!p.fieldConfig?.defaults?.unit) problems.push(`${where}: no unit`);
      if (!p.description || p.description.length < 20) problems.push(`${where}: no description`);
      if (p.datasource?.uid !== dsVariable) problems.push(`${where}: datasource not ${dsVariable}`);
      if (!p.targets?.length) problems.push(`${where}: no query`);
      for (const t of p.targets ?? []) {
        if (t.expr.trim() === "") problems.push(`${where}: empty query ${t.refId}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("has unique panel ids and non-overlapping grid positions", () => {
    const ids = dashboard.panels.flatMap((p) => [p.id, ...(p.panels ?? []).map((c) => c.id)]);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, `panel ${p.id}`).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          const key = `${i},${j}`;
          expect(cells.has(key), `panel ${p.id} overlaps at ${key}`).toBe(false);
          cells.add(key);
        }
      }
    }
  });

  it("has the overview, RED, locks, MCP and runtime rows in that order", () => {
    const rows = dashboard.panels.filter((p) => p.type === "row").map((p) => p.title);
    expect(rows).toHaveLength(ROWS.length);
    ROWS.forEach((prefix, i) => {
      expect(rows[i]).toMatch(new RegExp(`^${prefix}`));
    });
  });

  it("uses $__rate_interval in every rate, increase and irate", () => {
    const problems: string[] = [];
    for (const p of panels) {
      for (const e of exprs(p)) {
        for (const m of e.matchAll(/\b(rate|irate|increase)\([^[]*\[([^\]]+)\]/g)) {
          if (m[2] !== "$__rate_interval") problems.push(`panel ${p.id} "${p.title}": ${m[0]}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("filters every library series by the job and instance variables", () => {
    const problems: string[] = [];
    for (const p of panels) {
      for (const e of exprs(p)) {
        for (const m of e.matchAll(/([a-z_:][a-z0-9_:]*)\{([^}]*)\}/g)) {
          if (!m[2]?.includes('job=~"$job"') || !m[2].includes('instance=~"$instance"')) {
            problems.push(`panel ${p.id}: ${m[0]}`);
          }
        }
        // A bare metric name without a selector would ignore the variables.
        const bare = metricNamesIn(e).filter((n) => !new RegExp(`${n}\\{`).test(e));
        if (bare.length > 0) problems.push(`panel ${p.id}: no selector on ${bare.join(", ")}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("shows exemplars on the latency panels", () => {
    const latency = panels.filter(
      (p) => p.fieldConfig?.defaults?.unit === "s" && p.type !== "stat",
    );
    expect(latency.length).toBeGreaterThanOrEqual(4);
    const withExemplars = latency.filter((p) =>
      (p.targets ?? []).some((t) => t.exemplar === true && /_bucket\{/.test(t.expr)),
    );
    // Every latency panel built on a histogram shows exemplars.
    const histogramPanels = latency.filter((p) => exprs(p).some((e) => /_bucket\{/.test(e)));
    expect(withExemplars.map((p) => p.id)).toEqual(histogramPanels.map((p) => p.id));
  });

  it("has a heatmap of the operation latency buckets", () => {
    const heatmap = panels.find((p) => p.type === "heatmap");
    expect(heatmap?.targets?.[0]).toMatchObject({ format: "heatmap" });
    expect(heatmap?.targets?.[0]?.expr).toMatch(
      /sum by \(le\) \(rate\(mcp_session_store_operation_duration_seconds_bucket\{/,
    );
  });
});

describe("dashboard metrics exist", () => {
  it("reads metric names out of PromQL (functions, labels, keywords and durations skipped)", () => {
    const expr =
      'histogram_quantile(0.99, sum by (le, operation) (rate(a_bucket{job=~".*",code!="x_total"}[5s]))) / ignoring(le) (sum(b_total offset 5m) or vector(0)) > bool c';
    expect(metricNamesIn(expr).sort()).toEqual(["a_bucket", "b_total", "c"]);
    expect(baseMetricName("a_bucket", new Set(["a"]))).toBe("a");
    expect(baseMetricName("a_total", new Set(["a"]))).toBe("a_total");
  });

  it("queries only metrics the library, the MCP integration and prom-client's defaults export", async () => {
    const types = await exportedMetricTypes();
    const known = new Set(types.keys());
    // Sanity: the registry really holds the library's metrics (a wrong import would pass vacuously).
    expect(known.has("mcp_session_store_operation_duration_seconds")).toBe(true);
    expect(known.has("nodejs_eventloop_lag_p99_seconds")).toBe(true);

    const used = new Map<string, string[]>();
    for (const p of panels) {
      for (const e of exprs(p)) {
        for (const name of metricNamesIn(substituteVariables(e))) {
          used.set(name, [...(used.get(name) ?? []), `panel ${p.id}`]);
        }
      }
    }
    for (const v of dashboard.templating.list) {
      const m = /^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(String(v.definition ?? ""));
      if (m?.[1]) used.set(m[1], [...(used.get(m[1]) ?? []), `variable ${v.name}`]);
    }
    const unknown: string[] = [];
    for (const [name, where] of used) {
      const base = baseMetricName(name, known);
      if (!known.has(base)) {
        unknown.push(`${name} (${where.join(", ")})`);
        continue;
      }
      // _bucket only on histograms; rate() only on counters and histogram/summary series.
      if (name !== base && name.endsWith("_bucket"))
        expect(types.get(base), name).toBe("histogram");
    }
    expect(unknown).toEqual([]);

    // Every library metric is on the dashboard (a new metric needs a panel).
    const library = [...known].filter((n) => n.startsWith("mcp_session_store_"));
    const shown = new Set([...used.keys()].map((n) => baseMetricName(n, known)));
    // tasks_finished is shown with tasks_created; the rest must each appear.
    expect(library.filter((n) => !shown.has(n))).toEqual([]);
  });

  it("applies rate() only to counters and histogram series", async () => {
    const types = await exportedMetricTypes();
    const known = new Set(types.keys());
    const problems: string[] = [];
    for (const p of panels) {
      for (const e of exprs(p)) {
        for (const m of substituteVariables(e).matchAll(
          /\b(?:rate|increase)\(([a-zA-Z_:][a-zA-Z0-9_:]*)/g,
        )) {
          const name = m[1] ?? "";
          const base = baseMetricName(name, known);
          const type = types.get(base);
          const ok =
            type === "counter" || ((type === "histogram" || type === "summary") && name !== base);
          if (!ok) problems.push(`panel ${p.id}: rate over ${name} (${type})`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe("dashboard queries parse (promtool)", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ops-dashboard-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("every panel and variable query is valid PromQL", async () => {
    const rules = panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({
        record: `dashboard:panel_${p.id}_${t.refId.toLowerCase()}`,
        expr: substituteVariables(t.expr),
      })),
    );
    // label_values(selector, label): the selector must parse on its own.
    for (const v of dashboard.templating.list) {
      const m = /^label_values\((.*),\s*[a-z_]+\)$/.exec(String(v.definition ?? ""));
      if (m?.[1])
        rules.push({ record: `dashboard:variable_${v.name}`, expr: substituteVariables(m[1]) });
    }
    expect(rules.length).toBeGreaterThan(30);
    const file = path.join(dir, "dashboard-rules.yml");
    writeFileSync(file, JSON.stringify({ groups: [{ name: "dashboard", rules }] }));
    const result = await promtool(["check", "rules", file]);
    expect(result.stderr + result.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(result.code).toBe(0);
  });

  it("promtool rejects a broken expression (the check above can fail)", async () => {
    const file = path.join(dir, "broken.yml");
    writeFileSync(
      file,
      JSON.stringify({
        groups: [{ name: "x", rules: [{ record: "x:y", expr: "sum(rate(x[5m])" }] }],
      }),
    );
    const result = await promtool(["check", "rules", file]);
    expect(result.code).not.toBe(0);
  });
});

describe("grafana provisioning", () => {
  it("provisions the Prometheus data source and the dashboards folder", () => {
    const dsDir = path.join(ROOT, "grafana/provisioning/datasources");
    const sources = readdirSync(dsDir)
      .filter((f) => f.endsWith(".yml"))
      .flatMap(
        (f) =>
          (
            parse(readFileSync(path.join(dsDir, f), "utf8")) as {
              datasources: Array<Record<string, unknown>>;
            }
          ).datasources,
      );
    const prom = sources.find((s) => s.type === "prometheus");
    expect(prom).toMatchObject({
      uid: "prometheus",
      url: "http://prometheus:9090",
      isDefault: true,
    });
    const exemplarTarget = (
      (prom?.jsonData ?? {}) as { exemplarTraceIdDestinations?: Array<{ datasourceUid: string }> }
    ).exemplarTraceIdDestinations?.[0]?.datasourceUid;
    expect(sources.map((s) => s.uid)).toContain(exemplarTarget);

    const dbDir = path.join(ROOT, "grafana/provisioning/dashboards");
    const providers = readdirSync(dbDir)
      .filter((f) => f.endsWith(".yml"))
      .flatMap(
        (f) =>
          (
            parse(readFileSync(path.join(dbDir, f), "utf8")) as {
              providers: Array<{ type: string; options: { path: string } }>;
            }
          ).providers,
      );
    expect(providers).toHaveLength(1);
    expect(providers[0]).toMatchObject({
      type: "file",
      options: { path: "/var/lib/grafana/dashboards" },
    });
  });
});
