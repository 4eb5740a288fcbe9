/**
 * Prometheus config and alert rules (promtool), their runbooks, and the dashboard against a real
 * Prometheus (1 s scrapes) scraping two instances of the reference server (`npm start`) that share
 * one Redis and a Redlock quorum of three nodes, under MCP load sent from Node with the protocol
 * module of the k6 scripts, with faults injected through the servers.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  findResponse,
  initializedNotification,
  initializeRequest,
  isToolSuccess,
  type JsonRpcMessage,
  mcpHeaders,
  parseMcpResponse,
  parseSseEvents,
  type SseEvent,
  sessionIdFrom,
  toolCallRequest,
  toolResultText,
} from "../load/lib/mcp-protocol.js";
import { createRedisSessionStore, type Lock, type SessionStore } from "../src/index.js";
import {
  dashboardPanels,
  loadDashboard,
  type PrometheusHandle,
  promtool,
  ROOT,
  startPrometheus,
  substituteVariables,
} from "./support/prometheus.js";
import { type RedisNode, startRedis, startRedisNodes } from "./support/redis.js";
import { type ServerProcess, startServer } from "./support/server.js";

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
const runbooksDir = path.join(ROOT, "docs/runbooks");

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

  it("gives every alert a severity, a summary and a runbook in docs/runbooks/", () => {
    for (const rule of alertRules) {
      expect(["warning", "critical"], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.runbook_url, rule.alert).toBe(
        `{{ $externalLabels.runbook_base }}/${rule.alert}.md`,
      );
      const runbook = path.join(runbooksDir, `${rule.alert}.md`);
      expect(existsSync(runbook), `docs/runbooks/${rule.alert}.md`).toBe(true);
      const text = readFileSync(runbook, "utf8");
      expect(text.startsWith(`# ${rule.alert}\n`), `${rule.alert}: title`).toBe(true);
      for (const section of ["## Meaning", "## Check", "## Fix"])
        expect(text, `${rule.alert}: ${section}`).toContain(`\n${section}\n`);
    }
  });

  it("sets the runbook base URL as an external label, in prometheus.yml and in the rule tests", () => {
    const config = parse(readFileSync(path.join(ROOT, "prometheus/prometheus.yml"), "utf8")) as {
      global?: { external_labels?: Record<string, string> };
    };
    expect(config.global?.external_labels?.runbook_base).toMatch(/^https?:\/\/\S+[^/]$/);
    const tests = (
      parse(readFileSync(path.join(ROOT, "prometheus/alerts.test.yml"), "utf8")) as {
        tests: Array<{ name: string; external_labels?: Record<string, string> }>;
      }
    ).tests;
    for (const t of tests) expect(t.external_labels?.runbook_base, t.name).toBeTruthy();
  });
});

// ---------------------------------------------------------------------------------------------
// An MCP client over fetch, built on the protocol module the k6 scripts use

interface McpSession {
  sessionId: string;
  protocolVersion: string;
}

interface Reply {
  status: number;
  messages: JsonRpcMessage[];
  /** The SSE events of a `text/event-stream` body (empty for JSON bodies). */
  events: SseEvent[];
  sessionId: string | undefined;
}

let nextId = 1;

async function post(
  url: string,
  message: unknown,
  session: McpSession | undefined,
  signal: AbortSignal,
): Promise<Reply> {
  const res = await fetch(url, {
    method: "POST",
    headers: mcpHeaders(session ?? {}),
    body: JSON.stringify(message),
    signal,
  });
  const text = await res.text();
  const type = res.headers.get("content-type") ?? undefined;
  return {
    status: res.status,
    messages: text === "" ? [] : parseMcpResponse(type, text),
    events: type?.startsWith("text/event-stream") ? parseSseEvents(text) : [],
    sessionId: sessionIdFrom(Object.fromEntries(res.headers)),
  };
}

async function openSession(url: string, signal: AbortSignal): Promise<McpSession> {
  const id = nextId++;
  const init = await post(url, initializeRequest(id), undefined, signal);
  const version = findResponse(init.messages, id)?.result?.protocolVersion;
  if (init.status !== 200 || init.sessionId === undefined || typeof version !== "string") {
    throw new Error(`initialize: HTTP ${init.status}`);
  }
  const session = { sessionId: init.sessionId, protocolVersion: version };
  const ack = await post(url, initializedNotification(), session, signal);
  if (ack.status !== 202) throw new Error(`notifications/initialized: HTTP ${ack.status}`);
  return session;
}

async function callTool(
  url: string,
  session: McpSession,
  name: string,
  args: Record<string, unknown>,
  signal: AbortSignal,
  extraParams: Record<string, unknown> = {},
): Promise<{ reply: Reply; response: JsonRpcMessage }> {
  const id = nextId++;
  const request = toolCallRequest(id, name, args);
  Object.assign(request.params ?? {}, extraParams);
  const reply = await post(url, request, session, signal);
  const response = findResponse(reply.messages, id);
  if (response === undefined) throw new Error(`${name}: HTTP ${reply.status}, no response`);
  return { reply, response };
}

function structured(response: JsonRpcMessage): Record<string, unknown> {
  return JSON.parse(toolResultText(response) ?? "null") as Record<string, unknown>;
}

/** One protocol 2026-07-28 request: no session, the `_meta` envelope (tasks extension declared). */
async function modernCall(
  url: string,
  method: string,
  params: Record<string, unknown>,
  signal: AbortSignal,
): Promise<JsonRpcMessage> {
  const id = nextId++;
  const name = typeof params.name === "string" ? params.name : params.taskId;
  const res = await fetch(url, {
    method: "POST",
    headers: {
      ...mcpHeaders({ protocolVersion: "2026-07-28" }),
      "Mcp-Method": method,
      ...(typeof name === "string" ? { "Mcp-Name": name } : {}),
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id,
      method,
      params: {
        ...params,
        _meta: {
          "io.modelcontextprotocol/protocolVersion": "2026-07-28",
          "io.modelcontextprotocol/clientInfo": { name: "ops-prometheus", version: "1.0.0" },
          "io.modelcontextprotocol/clientCapabilities": {
            elicitation: { form: {} },
            extensions: { "io.modelcontextprotocol/tasks": {} },
          },
        },
      },
    }),
    signal,
  });
  const text = await res.text();
  const response = findResponse(
    parseMcpResponse(res.headers.get("content-type") ?? undefined, text),
    id,
  );
  if (response === undefined) throw new Error(`${method}: HTTP ${res.status}, no response`);
  return response;
}

async function deleteSession(url: string, session: McpSession, signal: AbortSignal) {
  const res = await fetch(url, { method: "DELETE", headers: mcpHeaders(session), signal });
  await res.text();
  return res.status;
}

// ---------------------------------------------------------------------------------------------
// Load and faults, sent to both instances until stopped

const KEY_PREFIX = "ops:";
/** notes_put takes at most 10 000 characters; "€" is 3 bytes of UTF-8, so 30 000 bytes a note. */
const BIG_NOTE = "€".repeat(10_000);
/** The store's maxPayloadBytes (the server keeps the default, 1 MiB). */
const MAX_PAYLOAD_BYTES = 1024 * 1024;

interface LoadStats {
  sessions: number;
  rebuiltReads: number;
  replays: number;
  tasks: number;
  /** Protocol 2026-07-28 flows completed (handles, multi round-trip, a task, across instances). */
  modernFlows: number;
  increments: number;
  payloadRefusals: number;
  lockTimeouts: number;
  /** Counter values handed out by `counter_increment` on the hot counter, with their tokens. */
  counter: Array<{ value: number; fencingToken: number }>;
  /** Anything that should not have happened (the test fails on the first ones). */
  problems: string[];
}

class Load {
  readonly stats: LoadStats = {
    sessions: 0,
    rebuiltReads: 0,
    replays: 0,
    tasks: 0,
    modernFlows: 0,
    increments: 0,
    payloadRefusals: 0,
    lockTimeouts: 0,
    counter: [],
    problems: [],
  };
  private readonly stop = new AbortController();
  private readonly loops: Array<Promise<void>> = [];
  private flowsStarted = 0;

  constructor(private readonly urls: [string, string]) {}

  get stopped(): boolean {
    return this.stop.signal.aborted;
  }

  /** A signal for one request: the stop, or 30 s (longer than any lock wait of the server). */
  private signal(): AbortSignal {
    return AbortSignal.any([this.stop.signal, AbortSignal.timeout(30_000)]);
  }

  private problem(what: string, err?: unknown): void {
    if (this.stopped) return;
    const detail = err === undefined ? "" : `: ${err instanceof Error ? err.message : String(err)}`;
    if (this.stats.problems.length < 20) this.stats.problems.push(`${what}${detail}`);
  }

  private spawn(what: string, loop: () => Promise<void>): void {
    this.loops.push(
      (async () => {
        while (!this.stopped) {
          try {
            await loop();
          } catch (err) {
            this.problem(what, err);
            await delay(50);
          }
        }
      })(),
    );
  }

  /** Starts every worker; returns at once. */
  start(options: { flows: number; contenders: number; modern?: number }): void {
    for (let w = 0; w < options.flows; w++) {
      this.spawn("session flow", () => this.sessionFlow(this.flowsStarted++));
    }
    for (let w = 0; w < (options.modern ?? 0); w++) {
      let n = w;
      this.spawn("2026-07-28 flow", () => this.modernFlow(n++));
    }
    for (let w = 0; w < options.contenders; w++) this.contender(w);
    this.payloadFault();
  }

  /**
   * One short MCP session across both instances: initialize and notes_put on one, the read on the
   * other (which rebuilds the session from the store), the hot counter, a call with progress
   * (its events stored), a replay of that stream with Last-Event-ID, a task, then DELETE.
   */
  private async sessionFlow(n: number): Promise<void> {
    const [home, away] = n % 2 === 0 ? this.urls : [this.urls[1], this.urls[0]];
    const session = await openSession(home, this.signal());
    const value = `value ${n}`;
    const put = await callTool(home, session, "notes_put", { key: "k", value }, this.signal());
    if (!isToolSuccess(put.response)) throw new Error(`notes_put: ${toolResultText(put.response)}`);
    const get = await callTool(away, session, "notes_get", { key: "k" }, this.signal());
    if (structured(get.response).value !== value) {
      throw new Error(`notes_get on the other instance: ${toolResultText(get.response)}`);
    }
    this.stats.rebuiltReads++;
    await this.increment(away, session);

    const progressToken = `p${n}`;
    const slow = await callTool(
      home,
      session,
      "slow_task",
      { steps: 2, stepMs: 5 },
      this.signal(),
      {
        _meta: { progressToken },
      },
    );
    if (!isToolSuccess(slow.response)) throw new Error("slow_task failed");
    const progress = slow.reply.messages.filter((m) => m.method === "notifications/progress");
    if (progress.length !== 2) throw new Error(`slow_task: ${progress.length} progress messages`);
    const cursor = slow.reply.events.find((e) => e.id !== undefined)?.id;
    if (cursor === undefined) throw new Error("slow_task: the stream carries no event id");

    if (n % 3 === 0) {
      // Resume the finished stream on the other instance: it replays the stored events.
      const res = await fetch(away, {
        method: "GET",
        headers: { ...mcpHeaders(session), "Last-Event-ID": cursor },
        signal: this.signal(),
      });
      const replayed = parseMcpResponse(
        res.headers.get("content-type") ?? undefined,
        await res.text(),
      );
      const id = slow.response.id as number;
      if (res.status !== 200 || !isToolSuccess(findResponse(replayed, id))) {
        throw new Error(`replay: HTTP ${res.status}, ${replayed.length} messages`);
      }
      this.stats.replays++;
    }

    const deleted = await deleteSession(away, session, this.signal());
    if (deleted !== 200) throw new Error(`DELETE: HTTP ${deleted}`);
    // The instance that still holds the transport notices the DELETE and answers 404.
    const after = await post(
      home,
      toolCallRequest(nextId++, "notes_get", {}),
      session,
      this.signal(),
    );
    if (after.status !== 404) throw new Error(`after DELETE: HTTP ${after.status}`);
    this.stats.sessions++;
  }

  /**
   * Protocol 2026-07-28 across both instances, no session: a counter and a notebook handle made
   * on one instance and used on the other; a multi round-trip call confirmed on the other, then
   * its confirmation replayed (refused); a task created on one and polled on the other.
   */
  private async modernFlow(n: number): Promise<void> {
    const [home, away] = n % 2 === 0 ? this.urls : [this.urls[1], this.urls[0]];
    const call = async (url: string, name: string, params: Record<string, unknown>) =>
      modernCall(url, "tools/call", { name, ...params }, this.signal());
    const counter = structured(await call(home, "counter_increment", { arguments: {} }))
      .counter as string;
    const again = structured(await call(away, "counter_increment", { arguments: { counter } }));
    if (again.value !== 2)
      throw new Error(`counter handle on the other instance: ${JSON.stringify(again)}`);
    const notebook = structured(
      await call(home, "notes_put", { arguments: { key: "k", value: `v${n}` } }),
    ).notebook as string;
    const read = structured(await call(away, "notes_get", { arguments: { notebook, key: "k" } }));
    if (read.value !== `v${n}`)
      throw new Error(`notebook on the other instance: ${JSON.stringify(read)}`);

    const round1 = await call(home, "confirm_charge", { arguments: { amount: 1 } });
    const round2 = {
      arguments: { amount: 1 },
      requestState: (round1.result as { requestState?: unknown } | undefined)?.requestState,
      inputResponses: { confirm: { action: "accept", content: { ok: true } } },
    };
    const charged = await call(away, "confirm_charge", round2);
    if (structured(charged).charged !== 1) throw new Error("confirm_charge: not charged");
    const replay = await call(home, "confirm_charge", round2);
    if (replay.error?.code !== -32602) throw new Error("confirm_charge: replay not refused");

    const created = await call(home, "slow_task_async", { arguments: { steps: 2, stepMs: 5 } });
    const taskId = (created.result as { taskId?: unknown } | undefined)?.taskId;
    if (typeof taskId !== "string") throw new Error("slow_task_async: no task");
    let status = "";
    const deadline = Date.now() + 10_000;
    while (status !== "completed" && Date.now() < deadline && !this.stopped) {
      const got = await modernCall(away, "tasks/get", { taskId }, this.signal());
      status = String((got.result as { status?: unknown } | undefined)?.status);
      if (status !== "completed") await delay(20);
    }
    if (status !== "completed") throw new Error(`2026-07-28 task still ${status}`);
    this.stats.tasks++;
    this.stats.modernFlows++;
  }

  private async increment(url: string, session: McpSession): Promise<void> {
    const { response } = await callTool(
      url,
      session,
      "counter_increment",
      { name: "hot" },
      this.signal(),
    );
    if (!isToolSuccess(response)) throw new Error(`counter_increment: ${toolResultText(response)}`);
    const { value, fencingToken } = structured(response) as { value: number; fencingToken: number };
    this.stats.counter.push({ value, fencingToken });
    this.stats.increments++;
  }

  /** Long-lived sessions hammering one counter from both instances: lock contention. */
  private contender(worker: number): void {
    let session: McpSession | undefined;
    const url = this.urls[worker % 2] as string;
    this.spawn("contender", async () => {
      session ??= await openSession(url, this.signal());
      await this.increment(url, session);
    });
  }

  /**
   * ERR_PAYLOAD_TOO_LARGE through notes_put: notes of 30 000 bytes until the session's record
   * passes maxPayloadBytes, then one more refused note every 250 ms.
   */
  private payloadFault(): void {
    let session: McpSession | undefined;
    let note = 0;
    const url = this.urls[0];
    this.spawn("payload fault", async () => {
      session ??= await openSession(url, this.signal());
      const { response } = await callTool(
        url,
        session,
        "notes_put",
        { key: `big-${note}`, value: BIG_NOTE },
        this.signal(),
      );
      if (isToolSuccess(response)) {
        note++;
        if (note * BIG_NOTE.length * 3 > 2 * MAX_PAYLOAD_BYTES) throw new Error("no payload limit");
        return;
      }
      if (!/maxPayloadBytes/.test(toolResultText(response) ?? "")) {
        throw new Error(`notes_put refused: ${toolResultText(response)}`);
      }
      this.stats.payloadRefusals++;
      await delay(250, undefined, { signal: this.stop.signal }).catch(() => undefined);
    });
  }

  /**
   * ERR_LOCK_TIMEOUT through counter_increment: another process holds the counter's lock longer
   * than the server waits for it (10 s), as a stuck holder would; two calls per instance give up.
   */
  async lockTimeouts(holder: SessionStore): Promise<void> {
    const lock: Lock = await holder.acquireLock("counter:held", { ttl: 30_000 });
    try {
      await Promise.all(
        [0, 1, 0, 1].map(async (i) => {
          const url = this.urls[i] as string;
          const session = await openSession(url, this.signal());
          const { response } = await callTool(
            url,
            session,
            "counter_increment",
            { name: "held" },
            this.signal(),
          );
          if (
            isToolSuccess(response) ||
            !/held by another owner/.test(toolResultText(response) ?? "")
          ) {
            this.problem(`counter_increment on a held lock: ${toolResultText(response)}`);
          } else this.stats.lockTimeouts++;
          await deleteSession(url, session, this.signal());
        }),
      );
    } finally {
      await lock.release();
    }
  }

  /**
   * Foreign messages on the event bus's Redis channel: every instance drops them (counted by
   * reason, never thrown into a listener).
   */
  busFault(redisUrl: string, channel: string): void {
    const publisher = new Redis(redisUrl, { lazyConnect: true });
    this.spawn("bus fault", async () => {
      await publisher.publish(channel, "not an event of ours");
      await delay(250, undefined, { signal: this.stop.signal }).catch(() => undefined);
    });
    this.loops.push(
      new Promise<void>((resolve) => {
        this.stop.signal.addEventListener("abort", () => {
          publisher.disconnect();
          resolve();
        });
      }),
    );
  }

  async close(): Promise<void> {
    this.stop.abort();
    await Promise.all(this.loops);
  }
}

// ---------------------------------------------------------------------------------------------

/** A sink for the servers' OTLP trace exports: spans must be sampled for exemplars to exist. */
async function startOtlpSink(): Promise<{
  url: string;
  requests(): number;
  stop(): Promise<void>;
}> {
  let requests = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url === "/v1/traces") requests++;
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

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

/**
 * Panels answered by the fixture (test/fixtures/ops-metrics-server.ts) as well as the servers,
 * and why. Every other panel is queried with `$instance` set to the two servers only.
 */
const FROM_FIXTURE: Record<string, string> = {
  "Lost leases":
    "no request or fault makes the server hold its counter lock past the 10 s lease (see the fixture)",
  "Tasks by status":
    "the SDK v1 task store is a library feature the reference server no longer runs (its 2025 sessions are served by SDK v2, which has no 2025 task augmentation): the fixture drives it",
};

/** Targets that may stay at 0 for the whole run (they still return series). */
const MAY_BE_ZERO: Record<string, string> = {
  "Locks held": "a gauge: the counter's lock is held for two Redis round trips, rarely at a scrape",
  "Lock waiters and holders": "gauges, sampled at scrapes like Locks held",
  "Bus events dropped and lost":
    "lost counts gaps in another process's sequence (a Redis outage between publish and delivery): none in this run; dropped is required below",
  "Transports evicted":
    "the server evicts an idle transport after 5 min or past 1000 local transports; its description says Empty",
};

/** Panels that may be empty, whose description must say so. */
const MAY_BE_EMPTY = ["Transports evicted"];

describe("dashboard and alerts against a real Prometheus scraping the reference server", () => {
  let data: RedisNode | undefined;
  let lockNodes: RedisNode[] = [];
  let servers: ServerProcess[] = [];
  let sink: Awaited<ReturnType<typeof startOtlpSink>> | undefined;
  let fixture: { child: ChildProcess; port: number } | undefined;
  let prometheus: PrometheusHandle | undefined;
  let holder: SessionStore | undefined;
  let load: Load | undefined;
  let faults: Promise<void> | undefined;
  let loadStart = 0;
  /** `$instance` selecting the two servers. */
  let serverInstances = "";
  let allInstances = "";
  let killedNode = "";

  beforeAll(async () => {
    [data, lockNodes, sink] = await Promise.all([
      startRedis(),
      startRedisNodes(3),
      startOtlpSink(),
    ]);
    const lockUrls = lockNodes.map((n) => n.url);
    const env = {
      REDIS_URL: data.url,
      LOCK_NODES: lockUrls.join(","),
      KEY_PREFIX,
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
      OTEL_TRACES_SAMPLER: "traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.2",
      // Multi round-trip states minted on one server verify on the other.
      REQUEST_STATE_KEY: "ops-prometheus-request-state-key-0123456789",
    };
    servers = [await startServer({ env }), await startServer({ env })];
    fixture = await startFixture({ REDIS_URL: data.url, LOCK_NODES: lockUrls.join(",") });
    const [a, b] = servers as [ServerProcess, ServerProcess];
    serverInstances = `127.0.0.1:(${a.port}|${b.port})`;
    allInstances = `127.0.0.1:(${a.port}|${b.port}|${fixture.port})`;

    // The repository's prometheus.yml, pointed at the servers and the fixture, 1 s scrapes.
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
    app.static_configs = [
      { targets: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`, `127.0.0.1:${fixture.port}`] },
    ];
    config.scrape_configs = [app];
    prometheus = await startPrometheus(config);

    // Another process that takes the counter's lock (before a node goes down: it joins the quorum).
    holder = await createRedisSessionStore({
      redisUrl: data.url,
      lockNodes: lockUrls,
      prefix: KEY_PREFIX,
      instrumentation: false,
      // Its complaint about the node killed below is expected.
      logger: { info: () => {}, warn: () => {}, error: () => {} },
    });
    loadStart = Math.floor(Date.now() / 1000) - 1;
    load = new Load([a.mcpUrl, b.mcpUrl]);
    load.start({ flows: 4, contenders: 4, modern: 2 });
    load.busFault(data.url, `${KEY_PREFIX}bus`);
    faults = load.lockTimeouts(holder);
    // One Redlock node of three goes down: locks keep their quorum, node errors get counted.
    const dead = lockNodes[2] as RedisNode;
    killedNode = `${dead.host}:${dead.port}`;
    await dead.kill();
  }, 120_000);

  afterAll(async () => {
    await load?.close();
    await faults?.catch(() => undefined);
    await holder?.disconnect().catch(() => undefined);
    await prometheus?.stop();
    await Promise.all(servers.map((s) => s.stop()));
    if (fixture) await stopChild(fixture.child);
    await sink?.stop();
    await Promise.all([...lockNodes, ...(data ? [data] : [])].map((n) => n.stop()));
  }, 60_000);

  it("scrapes both servers and loads every alert rule", async () => {
    const p = prometheus as PrometheusHandle;
    const deadline = Date.now() + 20_000;
    let up: string[] = [];
    while (Date.now() < deadline) {
      up = (await p.query(`up{job="mcp-server",instance=~"${allInstances}"}`)).result.map(
        (r) => r.value[1],
      );
      if (up.length === 3 && up.every((v) => v === "1")) break;
      await delay(250);
    }
    expect(up).toEqual(["1", "1", "1"]);
    // The servers run on Redis with Redlock over three nodes, not on the memory fallback.
    const backends = await p.query(
      `mcp_session_store_backend_info{instance=~"${serverInstances}"}`,
    );
    expect(
      backends.result.map((r) => `${r.metric.backend}/${r.metric.mode}/${r.metric.fallback}`),
    ).toEqual(["redis/standalone/false", "redis/standalone/false"]);
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

  it("every panel query returns data, non-zero where the load or a fault drives it", async () => {
    const p = prometheus as PrometheusHandle;
    const panels = dashboardPanels(loadDashboard());
    for (const title of [...Object.keys(FROM_FIXTURE), ...Object.keys(MAY_BE_ZERO)]) {
      expect(
        panels.some((x) => x.title === title),
        title,
      ).toBe(true);
    }
    for (const title of MAY_BE_EMPTY) {
      const panel = panels.find((x) => x.title === title);
      expect(panel?.description, `${title} says when it is empty`).toMatch(/\bEmpty\b/);
    }
    /** Series the load or a fault must have produced: label values with a non-zero sample. */
    const required: Array<{ title: string; refId: string; label: string; values: string[] }> = [
      {
        title: "Errors per second by code",
        refId: "A",
        label: "code",
        values: ["ERR_PAYLOAD_TOO_LARGE", "ERR_LOCK_TIMEOUT"],
      },
      { title: "Redlock node errors", refId: "A", label: "node", values: [killedNode] },
      { title: "Tasks by status", refId: "A", label: "status", values: ["working"] },
      { title: "Tasks by status", refId: "B", label: "status", values: ["completed"] },
      { title: "Bus events dropped and lost", refId: "A", label: "reason", values: ["malformed"] },
      { title: "Bus events per second", refId: "B", label: "kind", values: ["task_status"] },
      { title: "Request states consumed", refId: "A", label: "outcome", values: ["ok", "replay"] },
      {
        title: "Task transitions (tasks extension)",
        refId: "A",
        label: "status",
        values: ["working", "completed"],
      },
    ];

    const evaluate = async (): Promise<string[]> => {
      const problems: string[] = [];
      // The dashboard's time range: from the start of the load to now, one point per scrape.
      const range = { start: loadStart, end: Math.ceil(Date.now() / 1000), step: 1 };
      for (const panel of panels) {
        const instance = panel.title in FROM_FIXTURE ? allInstances : serverInstances;
        for (const t of panel.targets ?? []) {
          const expr = substituteVariables(t.expr, undefined, { instance });
          const { result } = await p.queryRange(expr, range);
          const nonzero = (values: Array<[number, string]>) =>
            values.some(([, v]) => Number.isFinite(Number(v)) && Number(v) !== 0);
          const where = `${panel.title} (${t.refId})`;
          if (result.length === 0) problems.push(`${where}: no series`);
          else if (!(panel.title in MAY_BE_ZERO) && !result.some((r) => nonzero(r.values))) {
            problems.push(`${where}: only zeros`);
          }
          for (const need of required) {
            if (need.title !== panel.title || need.refId !== t.refId) continue;
            for (const value of need.values) {
              const series = result.filter((r) => r.metric[need.label] === value);
              if (!series.some((r) => nonzero(r.values))) {
                problems.push(`${where}: nothing with ${need.label}="${value}"`);
              }
            }
          }
        }
      }
      return problems;
    };
    // Rates need a few scrapes, the lock timeouts 10 s: poll (bounded), no fixed sleep.
    const deadline = Date.now() + 45_000;
    let problems = await evaluate();
    while (problems.length > 0 && Date.now() < deadline) {
      await delay(1_000);
      problems = await evaluate();
    }
    expect(problems).toEqual([]);
  }, 60_000);

  it("served the load without a failure other than the injected faults", async () => {
    await faults;
    const stats = (load as Load).stats;
    expect(stats.problems).toEqual([]);
    expect(stats.sessions).toBeGreaterThan(0);
    expect(stats.replays).toBeGreaterThan(0);
    expect(stats.tasks).toBeGreaterThan(0);
    expect(stats.modernFlows).toBeGreaterThan(0);
    expect(stats.payloadRefusals).toBeGreaterThan(0);
    expect(stats.lockTimeouts).toBe(4);
    // Mutual exclusion held across both instances with a lock node down: no value twice, and
    // fencing tokens grow with the values.
    const byValue = [...stats.counter].sort((x, y) => x.value - y.value);
    expect(new Set(byValue.map((c) => c.value)).size).toBe(byValue.length);
    for (let i = 1; i < byValue.length; i++) {
      expect((byValue[i] as { fencingToken: number }).fencingToken).toBeGreaterThan(
        (byValue[i - 1] as { fencingToken: number }).fencingToken,
      );
    }
  }, 30_000);

  it("stores trace-id exemplars for the latency histograms the panels show", async () => {
    const p = prometheus as PrometheusHandle;
    const query = encodeURIComponent(
      `mcp_session_store_operation_duration_seconds_bucket{instance=~"${serverInstances}"}`,
    );
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
