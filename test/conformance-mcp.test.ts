/**
 * The MCP conformance suite (@modelcontextprotocol/conformance, server scenarios, `--suite all`)
 * against the reference server in `MCP_PROFILE=conformance`: once against one instance (memory
 * store), once against two instances sharing one Redis behind a real nginx round robin.
 *
 * The suite needs Node 22: it runs through `npx -y node@22` (downloaded from the npm registry
 * the first time). Set CONFORMANCE_UPDATE=1 to rewrite conformance/results.json.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { messagesOf, runConformanceCli } from "./support/conformance.js";
import { type NginxHandle, startNginx } from "./support/nginx.js";
import { type RedisNode, startRedis } from "./support/redis.js";
import { type ServerProcess, startServer } from "./support/server.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const CLI = path.join(
  ROOT,
  "node_modules",
  "@modelcontextprotocol",
  "conformance",
  "dist",
  "index.js",
);
const RUN_TIMEOUT_MS = 180_000;

/**
 * What the conformance client answers to sampling and elicitation: a tool result that carries it
 * proves the answer reached the tool, wherever the balancer sent it (the suite's own checks only
 * want some content, and a timed-out tool still has some).
 */
const CLIENT_ANSWERS: Record<string, RegExp> = {
  "tools-call-sampling": /LLM response: This is a test response from the client/,
  "tools-call-elicitation":
    /action=accept, content=\{"username":"testuser","email":"test@example.com"\}/,
};

interface ScenarioResult {
  passed: number;
  failed: number;
  warnings: number;
  status: "pass" | "fail";
  failures: string[];
  warningMessages: string[];
  /** Tool results with `isError: true` inside passing checks (the check only wants content). */
  toolErrors: string[];
  /** Text of the tool results the checks recorded, by check id. */
  toolTexts: Record<string, string>;
}

async function runConformance(url: string): Promise<Record<string, ScenarioResult>> {
  const scenarios = await runConformanceCli(CLI, ["--url", url, "--suite", "all"], RUN_TIMEOUT_MS);
  const results: Record<string, ScenarioResult> = {};
  for (const [name, checks] of Object.entries(scenarios)) {
    const failures = messagesOf(checks, "FAILURE");
    const warningMessages = messagesOf(checks, "WARNING");
    results[name] = {
      passed: checks.filter((c) => c.status === "SUCCESS").length,
      failed: failures.length,
      warnings: warningMessages.length,
      status: failures.length === 0 ? "pass" : "fail",
      failures,
      warningMessages,
      toolErrors: checks
        // tools-call-error expects an error result; elsewhere one means the tool failed.
        .filter((c) => c.id !== "tools-call-error" && c.details?.result?.isError === true)
        .map((c) => `${c.id}: ${c.details?.result?.content?.[0]?.text ?? ""}`),
      toolTexts: Object.fromEntries(
        checks
          .filter((c) => typeof c.details?.result?.content?.[0]?.text === "string")
          .map((c) => [c.id, c.details?.result?.content?.[0]?.text as string]),
      ),
    };
  }
  return results;
}

function expectClientAnswers(results: Record<string, ScenarioResult>): void {
  for (const [check, answer] of Object.entries(CLIENT_ANSWERS)) {
    const texts = Object.values(results).map((r) => r.toolTexts[check]);
    expect(texts.find((t) => t !== undefined)).toMatch(answer);
  }
}

/** Sum of a metric's samples in a Prometheus text exposition. */
function sum(metrics: string, name: string): number {
  let total = 0;
  for (const line of metrics.split("\n")) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return total;
}

describe("MCP conformance (server scenarios)", () => {
  let single: ServerProcess | undefined;
  let redis: RedisNode | undefined;
  const pair: ServerProcess[] = [];
  let nginx: NginxHandle | undefined;
  let one: Record<string, ScenarioResult> = {};
  let two: Record<string, ScenarioResult> = {};

  beforeAll(async () => {
    single = await startServer({ env: { MCP_PROFILE: "conformance" } });
    redis = await startRedis();
    const env = { MCP_PROFILE: "conformance", REDIS_URL: redis.url, KEY_PREFIX: "conformance:" };
    pair.push(await startServer({ env }), await startServer({ env }));
    nginx = await startNginx(pair.map((s) => s.port));
  }, 300_000);

  afterAll(async () => {
    await nginx?.stop();
    await Promise.all([single?.stop(), ...pair.map((s) => s.stop())]);
    await redis?.stop();
  });

  it("passes every scenario on one instance", { timeout: RUN_TIMEOUT_MS + 10_000 }, async () => {
    one = await runConformance((single as ServerProcess).mcpUrl);
    const failing = Object.entries(one).filter(
      ([, r]) => r.status === "fail" || r.toolErrors.length > 0,
    );
    expect(failing).toEqual([]);
    expect(Object.keys(one).length).toBeGreaterThanOrEqual(30);
    expectClientAnswers(one);
  });

  it("passes the same scenarios on two instances behind nginx, answers routed to the asking instance", {
    timeout: RUN_TIMEOUT_MS + 10_000,
  }, async () => {
    two = await runConformance(`${(nginx as NginxHandle).url}/mcp`);
    expect(Object.keys(two).sort()).toEqual(Object.keys(one).sort());
    const regressions = Object.entries(two)
      .filter(
        ([name, r]) =>
          (r.status === "fail" || r.toolErrors.length > 0) && one[name]?.status === "pass",
      )
      .map(([name, r]) => `${name}: ${r.failures.join("; ")}`);
    expect(regressions).toEqual([]);
    expectClientAnswers(two);
    // Both instances served requests: the balancer really spread the sessions.
    const answers = { delivered: 0, routed: 0, dropped: 0 };
    for (const server of pair) {
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toMatch(/mcp_session_store_operation_duration_seconds_count\{[^}]*\} [1-9]/);
      answers.delivered += sum(metrics, "mcp_session_store_mcp_answers_delivered_total");
      answers.routed += sum(metrics, "mcp_session_store_mcp_answers_routed_total");
      answers.dropped += sum(metrics, "mcp_session_store_mcp_answers_dropped_total");
    }
    // Sampling, elicitation, and the two elicitation SEPs: each answer reached its request once,
    // some of them through the other instance.
    expect(answers.delivered).toBeGreaterThanOrEqual(4);
    expect(answers.routed).toBeGreaterThan(0);
    expect(answers.dropped).toBe(0);
    if (process.env.CONFORMANCE_UPDATE === "1") {
      const names = Object.keys(one).sort();
      const file = {
        suite: "@modelcontextprotocol/conformance server --suite all",
        version: JSON.parse(
          readFileSync(
            path.join(ROOT, "node_modules/@modelcontextprotocol/conformance/package.json"),
            "utf8",
          ),
        ).version as string,
        date: new Date().toISOString().slice(0, 10),
        setups: {
          one: "one instance, memory store",
          two: "two instances, one Redis, nginx round robin without stickiness",
        },
        scenarios: Object.fromEntries(
          names.map((name) => [
            name,
            {
              one: one[name],
              two: two[name],
            },
          ]),
        ),
      };
      writeFileSync(
        path.join(ROOT, "conformance", "results.json"),
        `${JSON.stringify(file, null, 2)}\n`,
      );
    }
  });
});
