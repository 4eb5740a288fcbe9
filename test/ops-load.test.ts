/**
 * The k6 scripts without a k6 binary: type-checked with @types/k6, bundled with esbuild with only
 * `k6*` external (no Node import can slip in), their options and thresholds validated, and the
 * pure protocol module they share exercised against the reference server (`npm start`, built and
 * spawned) and against a bare MCP SDK server in both response modes (SSE and JSON).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { SUPPORTED_PROTOCOL_VERSIONS } from "@modelcontextprotocol/sdk/types.js";
import { build, type Plugin } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  findResponse,
  initializedNotification,
  initializeRequest,
  isToolSuccess,
  LATEST_PROTOCOL_VERSION,
  listToolsRequest,
  mcpHeaders,
  modernHeaders,
  modernToolCallRequest,
  parseMcpResponse,
  parseSseEvents,
  sessionIdFrom,
  structuredString,
  toolCallRequest,
  toolResultText,
} from "../load/lib/mcp-protocol.js";
import { ROOT, run } from "./support/prometheus.js";
import { type ServerProcess, startServer } from "./support/server.js";

const LOAD = path.join(ROOT, "load");
const SCRIPTS = readdirSync(LOAD).filter((f) => f.endsWith(".ts"));
const tmp = mkdtempSync(path.join(os.tmpdir(), "ops-load-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// k6 options checker (the rules of https://grafana.com/docs/k6/latest/using-k6/scenarios/ and
// .../thresholds/ that a typo would break at run time)

const DURATION = /^(\d+(\.\d+)?(ms|s|m|h))+$/;
const EXECUTORS: Record<string, { required: string[]; durations: string[] }> = {
  "shared-iterations": { required: ["vus", "iterations"], durations: ["maxDuration"] },
  "per-vu-iterations": { required: ["vus", "iterations"], durations: ["maxDuration"] },
  "constant-vus": { required: ["vus", "duration"], durations: ["duration"] },
  "ramping-vus": { required: ["stages"], durations: [] },
  "constant-arrival-rate": {
    required: ["rate", "timeUnit", "duration", "preAllocatedVUs"],
    durations: ["timeUnit", "duration"],
  },
  "ramping-arrival-rate": { required: ["stages", "preAllocatedVUs"], durations: ["timeUnit"] },
  externally_controlled: { required: ["duration"], durations: ["duration"] },
};
type MetricType = "counter" | "gauge" | "rate" | "trend";
const BUILTIN_METRICS: Record<string, MetricType> = {
  http_reqs: "counter",
  http_req_failed: "rate",
  http_req_duration: "trend",
  http_req_waiting: "trend",
  http_req_connecting: "trend",
  http_req_blocked: "trend",
  http_req_sending: "trend",
  http_req_receiving: "trend",
  http_req_tls_handshaking: "trend",
  iteration_duration: "trend",
  iterations: "counter",
  dropped_iterations: "counter",
  checks: "rate",
  data_sent: "counter",
  data_received: "counter",
  vus: "gauge",
  vus_max: "gauge",
};
const AGGREGATIONS: Record<MetricType, RegExp> = {
  counter: /^(count|rate)$/,
  gauge: /^value$/,
  rate: /^rate$/,
  trend: /^(avg|min|max|med|p\((\d{1,2}(\.\d+)?|100)\))$/,
};
const THRESHOLD = /^\s*([a-z]+(?:\([\d.]+\))?)\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(\.\d+)?)\s*$/;

function checkK6Options(options: unknown, customMetrics: Record<string, MetricType>): string[] {
  const problems: string[] = [];
  const o = options as {
    scenarios?: Record<string, Record<string, unknown>>;
    thresholds?: Record<string, unknown[]>;
  };
  const scenarios = Object.entries(o.scenarios ?? {});
  if (scenarios.length === 0) problems.push("no scenarios");
  for (const [name, s] of scenarios) {
    const spec = EXECUTORS[String(s.executor)];
    if (!spec) {
      problems.push(`${name}: unknown executor ${String(s.executor)}`);
      continue;
    }
    for (const key of spec.required)
      if (s[key] === undefined) problems.push(`${name}: ${key} missing`);
    for (const key of spec.durations) {
      if (s[key] !== undefined && !DURATION.test(String(s[key])))
        problems.push(`${name}: ${key} "${String(s[key])}"`);
    }
    for (const key of ["vus", "rate", "preAllocatedVUs", "maxVUs", "iterations"]) {
      const v = s[key];
      if (v !== undefined && !(Number.isInteger(v) && (v as number) > 0))
        problems.push(`${name}: ${key} ${String(v)}`);
    }
    if (s.maxVUs !== undefined && (s.maxVUs as number) < (s.preAllocatedVUs as number)) {
      problems.push(`${name}: maxVUs below preAllocatedVUs`);
    }
  }
  const thresholds = Object.entries(o.thresholds ?? {});
  if (thresholds.length === 0) problems.push("no thresholds");
  const known = { ...BUILTIN_METRICS, ...customMetrics };
  for (const [key, list] of thresholds) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)(\{([a-zA-Z_][a-zA-Z0-9_]*):([^}]+)\})?$/.exec(key);
    const metric = m?.[1];
    const type = metric === undefined ? undefined : known[metric];
    if (!type) {
      problems.push(`threshold on unknown metric "${key}"`);
      continue;
    }
    if (!Array.isArray(list) || list.length === 0) problems.push(`${key}: no expressions`);
    for (const entry of list ?? []) {
      const expr = typeof entry === "string" ? entry : (entry as { threshold?: unknown }).threshold;
      if (typeof entry === "object" && entry !== null) {
        const extra = Object.keys(entry).filter(
          (k) => !["threshold", "abortOnFail", "delayAbortEval"].includes(k),
        );
        if (extra.length > 0) problems.push(`${key}: unknown threshold fields ${extra.join(",")}`);
        const delayEval = (entry as { delayAbortEval?: unknown }).delayAbortEval;
        if (delayEval !== undefined && !DURATION.test(String(delayEval)))
          problems.push(`${key}: delayAbortEval`);
      }
      const t = THRESHOLD.exec(String(expr));
      if (!t) {
        problems.push(`${key}: cannot parse "${String(expr)}"`);
        continue;
      }
      if (!AGGREGATIONS[type].test(t[1] ?? ""))
        problems.push(`${key}: ${t[1]} is not valid on a ${type}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------

/** Stubs of the k6 modules, enough to evaluate a script's top level (options, metric objects). */
const k6Stubs: Plugin = {
  name: "k6-stubs",
  setup(b) {
    b.onResolve({ filter: /^k6(\/.*)?$/ }, (args) => ({ path: args.path, namespace: "k6-stub" }));
    b.onLoad({ filter: /.*/, namespace: "k6-stub" }, (args) => {
      const notInNode = "() => { throw new Error('k6 API called at init time'); }";
      const sources: Record<string, string> = {
        k6: `export const check = ${notInNode}; export const fail = ${notInNode}; export const sleep = ${notInNode}; export const group = ${notInNode};`,
        "k6/http": `const h = { get: ${notInNode}, post: ${notInNode}, del: ${notInNode}, request: ${notInNode} }; export default h; export const post = h.post;`,
        "k6/execution": "export default { scenario: {}, vu: {} };",
        "k6/metrics": ["Counter", "Gauge", "Rate", "Trend"]
          .map(
            (c) =>
              `export class ${c} { constructor(name) { (globalThis.__k6metrics ??= {})[name] = "${c.toLowerCase()}"; } add() {} }`,
          )
          .join("\n"),
      };
      const contents = sources[args.path];
      if (contents === undefined) throw new Error(`no stub for ${args.path}`);
      return { contents, loader: "js" };
    });
  },
};

describe("k6 scripts", () => {
  it("finds the four scenarios", () => {
    expect(SCRIPTS.sort()).toEqual([
      "failover.ts",
      "lock-contention.ts",
      "modern-calls.ts",
      "session-lifecycle.ts",
    ]);
  });

  it("type-check with @types/k6 (tsc -p load/tsconfig.json)", async () => {
    const tsc = path.join(ROOT, "node_modules/typescript/bin/tsc");
    const result = await run(process.execPath, [tsc, "-p", "load/tsconfig.json", "--noEmit"], {
      timeoutMs: 60_000,
    });
    expect(result.stdout + result.stderr).toBe("");
    expect(result.code).toBe(0);
  }, 60_000);

  it.each(SCRIPTS)("%s bundles with only k6 modules external (no Node import)", async (script) => {
    const result = await build({
      entryPoints: [path.join(LOAD, script)],
      bundle: true,
      write: false,
      format: "esm",
      platform: "neutral",
      external: ["k6", "k6/*"],
      metafile: true,
      logLevel: "silent",
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.every((i) => i.startsWith("load/"))).toBe(true);
    const imports = Object.values(result.metafile.outputs).flatMap((o) =>
      o.imports.map((i) => i.path),
    );
    expect(imports.length).toBeGreaterThan(0);
    for (const p of imports) expect(p).toMatch(/^k6(\/[a-z-]+)?$/);
  });

  it("the bundle check rejects a Node import", async () => {
    const bad = path.join(tmp, "bad.ts");
    writeFileSync(
      bad,
      'import { readFileSync } from "node:fs";\nexport default () => readFileSync("x");\n',
    );
    await expect(
      build({
        entryPoints: [bad],
        bundle: true,
        write: false,
        platform: "neutral",
        external: ["k6", "k6/*"],
        logLevel: "silent",
      }),
    ).rejects.toThrow(/node:fs/);
  });

  it("the protocol module imports nothing", async () => {
    const result = await build({
      entryPoints: [path.join(LOAD, "lib/mcp-protocol.ts")],
      bundle: true,
      write: false,
      platform: "neutral",
      metafile: true,
      logLevel: "silent",
    });
    expect(Object.keys(result.metafile.inputs)).toEqual(["load/lib/mcp-protocol.ts"]);
  });

  it.each(SCRIPTS)("%s has valid executor options and thresholds", async (script) => {
    const outfile = path.join(tmp, `${script}.mjs`);
    await build({
      entryPoints: [path.join(LOAD, script)],
      bundle: true,
      outfile,
      format: "esm",
      platform: "neutral",
      plugins: [k6Stubs],
      logLevel: "silent",
    });
    const g = globalThis as {
      __ENV?: Record<string, string>;
      __k6metrics?: Record<string, MetricType>;
    };
    g.__ENV = {};
    g.__k6metrics = {};
    const mod = (await import(pathToFileURL(outfile).href)) as {
      options?: unknown;
      default?: unknown;
    };
    expect(typeof mod.default).toBe("function");
    expect(checkK6Options(mod.options, g.__k6metrics)).toEqual([]);
  });

  it("the options checker catches bad executors and thresholds", () => {
    const problems = checkK6Options(
      {
        scenarios: {
          a: { executor: "constant-arrival-rate", rate: 10, timeUnit: "1 second", duration: "1m" },
          b: { executor: "constant-vu", vus: 1, duration: "1m" },
        },
        thresholds: {
          http_req_duration: ["p99<500"],
          http_req_failed: ["avg<0.01"],
          checks: [{ threshold: "rate>0.9", abortOnFial: true }],
          my_metric: ["count<1"],
        },
      },
      {},
    );
    expect(problems).toEqual([
      "a: preAllocatedVUs missing",
      'a: timeUnit "1 second"',
      "b: unknown executor constant-vu",
      'http_req_duration: cannot parse "p99<500"',
      "http_req_failed: avg is not valid on a rate",
      "checks: unknown threshold fields abortOnFial",
      'threshold on unknown metric "my_metric"',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("mcp-protocol helpers", () => {
  it("parses SSE per the WHATWG rules", () => {
    const body =
      ': comment\r\nevent: message\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata:x\n\nevent: ping\n\ndata: last';
    expect(parseSseEvents(body)).toEqual([
      { event: "message", id: "7", data: '{"a":\n1}' },
      { event: "message", id: "7", data: "x" },
      { event: "message", id: "7", data: "last" },
    ]);
  });

  it("reads JSON and SSE responses and rejects other content types", () => {
    const msg = { jsonrpc: "2.0" as const, id: 3, result: { ok: true } };
    expect(parseMcpResponse("application/json; charset=utf-8", JSON.stringify(msg))).toEqual([msg]);
    expect(
      parseMcpResponse("text/event-stream", `event: message\ndata: ${JSON.stringify(msg)}\n\n`),
    ).toEqual([msg]);
    expect(parseMcpResponse("application/json", "")).toEqual([]);
    // A resumable stream (event store, protocol 2025-11-25) opens with a priming event.
    expect(
      parseMcpResponse(
        "text/event-stream",
        `id: s1_1\nretry: 1000\ndata: \n\nid: s1_2\nevent: message\ndata: ${JSON.stringify(msg)}\n\n`,
      ),
    ).toEqual([msg]);
    expect(() => parseMcpResponse("text/html", "<html>")).toThrow(/content type/);
    expect(sessionIdFrom({ "mcp-session-id": "abc" })).toBe("abc");
    expect(sessionIdFrom({ "Mcp-Session-Id": ["def"] })).toBe("def");
    expect(mcpHeaders()).toEqual({
      "Content-Type": "application/json",
      Accept: "application/json, text/event-stream",
    });
  });

  it("speaks a protocol version the SDK supports", () => {
    expect(SUPPORTED_PROTOCOL_VERSIONS).toContain(LATEST_PROTOCOL_VERSION);
  });
});

describe.each([
  { mode: "SSE responses", json: false },
  { mode: "JSON responses", json: true },
])("mcp-protocol against a real MCP SDK server ($mode)", ({ json }) => {
  let server: http.Server;
  let url: string;
  const transports = new Map<string, StreamableHTTPServerTransport>();

  function mcpServer(): McpServer {
    const notes = new Map<string, string>();
    let counter = 0;
    const s = new McpServer({ name: "ops-test", version: "1.0.0" });
    s.registerTool(
      "notes_put",
      { inputSchema: { key: z.string(), value: z.string() } },
      ({ key, value }) => {
        notes.set(key, value);
        return { content: [{ type: "text", text: `stored ${key}` }] };
      },
    );
    s.registerTool("notes_get", { inputSchema: { key: z.string() } }, ({ key }) => ({
      content: [{ type: "text", text: notes.get(key) ?? "" }],
    }));
    s.registerTool("counter_increment", { inputSchema: { name: z.string().optional() } }, () => ({
      content: [{ type: "text", text: String(++counter) }],
    }));
    s.registerTool(
      "slow_task",
      { inputSchema: { steps: z.number().int() } },
      async ({ steps }, extra) => {
        const token = extra._meta?.progressToken;
        for (let i = 1; i <= steps; i++) {
          await delay(1);
          if (token !== undefined) {
            await extra.sendNotification({
              method: "notifications/progress",
              params: { progressToken: token, progress: i, total: steps },
            });
          }
        }
        return { content: [{ type: "text", text: `done ${steps}` }] };
      },
    );
    return s;
  }

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      void (async () => {
        const id = req.headers["mcp-session-id"];
        const existing = typeof id === "string" ? transports.get(id) : undefined;
        if (existing) {
          await existing.handleRequest(req, res);
          return;
        }
        if (typeof id === "string") {
          res.writeHead(404).end();
          return;
        }
        const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          enableJsonResponse: json,
          onsessioninitialized: (sid) => {
            transports.set(sid, transport);
          },
          onsessionclosed: (sid) => {
            transports.delete(sid);
          },
        });
        await mcpServer().connect(transport);
        await transport.handleRequest(req, res);
      })().catch(() => res.writeHead(500).end());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });

  afterAll(async () => {
    await Promise.all([...transports.values()].map((t) => t.close()));
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function post(body: unknown, headers: Record<string, string>): Promise<Response> {
    return fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
  }

  it("runs a whole session: initialize, initialized, tools, progress, DELETE", async () => {
    const init = await post(initializeRequest(1), mcpHeaders());
    expect(init.status).toBe(200);
    const sessionId = sessionIdFrom(Object.fromEntries(init.headers));
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const initMessages = parseMcpResponse(
      init.headers.get("content-type") ?? undefined,
      await init.text(),
    );
    const initResult = findResponse(initMessages, 1);
    expect(initResult?.result?.protocolVersion).toBe(LATEST_PROTOCOL_VERSION);
    const session = { sessionId: sessionId as string, protocolVersion: LATEST_PROTOCOL_VERSION };

    const ack = await post(initializedNotification(), mcpHeaders(session));
    expect(ack.status).toBe(202);
    await ack.text();

    const list = await post(listToolsRequest(2), mcpHeaders(session));
    const tools = findResponse(
      parseMcpResponse(list.headers.get("content-type") ?? undefined, await list.text()),
      2,
    );
    expect(
      ((tools?.result?.tools ?? []) as Array<{ name: string }>).map((t) => t.name).sort(),
    ).toEqual(["counter_increment", "notes_get", "notes_put", "slow_task"]);

    const put = await post(
      toolCallRequest(3, "notes_put", { key: "k", value: "v1" }),
      mcpHeaders(session),
    );
    expect(
      isToolSuccess(
        findResponse(
          parseMcpResponse(put.headers.get("content-type") ?? undefined, await put.text()),
          3,
        ),
      ),
    ).toBe(true);
    const get = await post(toolCallRequest(4, "notes_get", { key: "k" }), mcpHeaders(session));
    const got = findResponse(
      parseMcpResponse(get.headers.get("content-type") ?? undefined, await get.text()),
      4,
    );
    expect(toolResultText(got)).toBe("v1");

    // Progress notifications come before the result on the same stream (SSE mode).
    const slow = toolCallRequest(5, "slow_task", { steps: 3 });
    (slow.params as { _meta?: unknown })._meta = { progressToken: "p1" };
    const slowRes = await post(slow, mcpHeaders(session));
    const slowMessages = parseMcpResponse(
      slowRes.headers.get("content-type") ?? undefined,
      await slowRes.text(),
    );
    expect(toolResultText(findResponse(slowMessages, 5))).toBe("done 3");
    const progress = slowMessages.filter((m) => m.method === "notifications/progress");
    expect(progress).toHaveLength(json ? 0 : 3);

    // A tool error is not a success.
    const bad = await post(toolCallRequest(6, "no_such_tool"), mcpHeaders(session));
    expect(
      isToolSuccess(
        findResponse(
          parseMcpResponse(bad.headers.get("content-type") ?? undefined, await bad.text()),
          6,
        ),
      ),
    ).toBe(false);

    // The server refuses requests without the session header once initialized.
    const noSession = await post(toolCallRequest(7, "notes_get", { key: "k" }), mcpHeaders());
    expect(noSession.status).toBeGreaterThanOrEqual(400);
    await noSession.text();

    const del = await fetch(url, { method: "DELETE", headers: mcpHeaders(session) });
    expect(del.status).toBe(200);
    await del.text();
    const after = await post(toolCallRequest(8, "notes_get", { key: "k" }), mcpHeaders(session));
    expect(after.status).toBe(404);
    await after.text();
  });
});

describe("mcp-protocol against the reference server (npm start, memory store)", () => {
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    server = await startServer();
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
  });

  let id = 0;
  async function post(
    body: unknown,
    session?: { sessionId: string; protocolVersion: string },
  ): Promise<{ status: number; contentType: string | undefined; text: string; headers: Headers }> {
    const res = await fetch((server as ServerProcess).mcpUrl, {
      method: "POST",
      headers: mcpHeaders(session ?? {}),
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      contentType: res.headers.get("content-type") ?? undefined,
      text: await res.text(),
      headers: res.headers,
    };
  }
  async function call(
    name: string,
    args: Record<string, unknown>,
    session: { sessionId: string; protocolVersion: string },
    meta?: Record<string, unknown>,
  ) {
    const request = toolCallRequest(++id, name, args);
    if (meta !== undefined) (request.params as { _meta?: unknown })._meta = meta;
    const reply = await post(request, session);
    expect(reply.status, name).toBe(200);
    const messages = parseMcpResponse(reply.contentType, reply.text);
    return { reply, messages, response: findResponse(messages, request.id) };
  }

  it("runs the protocol 2026-07-28 flow of modern-calls.ts: no session, handles between calls", async () => {
    const modern = async (name: string, args: Record<string, unknown>) => {
      const request = modernToolCallRequest(++id, name, args);
      const res = await fetch((server as ServerProcess).mcpUrl, {
        method: "POST",
        headers: modernHeaders("tools/call", name),
        body: JSON.stringify(request),
      });
      expect(res.status, name).toBe(200);
      expect(res.headers.get("mcp-session-id")).toBeNull();
      const messages = parseMcpResponse(
        res.headers.get("content-type") ?? undefined,
        await res.text(),
      );
      const response = findResponse(messages, request.id);
      expect(isToolSuccess(response), name).toBe(true);
      return response;
    };
    const counter = structuredString(await modern("counter_increment", {}), "counter");
    expect(counter).toMatch(/^h_/);
    const again = await modern("counter_increment", { counter });
    expect(JSON.parse(toolResultText(again) ?? "null")).toMatchObject({ counter, value: 2 });
    const notebook = structuredString(
      await modern("notes_put", { key: "k", value: "v" }),
      "notebook",
    );
    const read = await modern("notes_get", { notebook, key: "k" });
    expect(JSON.parse(toolResultText(read) ?? "null")).toMatchObject({ value: "v" });
  });

  it("runs the whole session flow of the k6 scripts", async () => {
    const s = server as ServerProcess;
    const init = await post(initializeRequest(++id));
    expect(init.status).toBe(200);
    const sessionId = sessionIdFrom(Object.fromEntries(init.headers));
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const initResult = findResponse(parseMcpResponse(init.contentType, init.text), id);
    expect(initResult?.result?.protocolVersion).toBe(LATEST_PROTOCOL_VERSION);
    const session = { sessionId: sessionId as string, protocolVersion: LATEST_PROTOCOL_VERSION };

    const ack = await post(initializedNotification(), session);
    expect(ack.status).toBe(202);

    const list = await post(listToolsRequest(++id), session);
    const tools = findResponse(parseMcpResponse(list.contentType, list.text), id);
    expect(
      ((tools?.result?.tools ?? []) as Array<{ name: string }>).map((t) => t.name).sort(),
    ).toEqual(["counter_increment", "notes_get", "notes_put", "slow_task", "slow_task_async"]);

    const put = await call("notes_put", { key: "k", value: "v1" }, session);
    expect(isToolSuccess(put.response)).toBe(true);
    const got = await call("notes_get", { key: "k" }, session);
    expect(JSON.parse(toolResultText(got.response) ?? "null")).toMatchObject({
      key: "k",
      value: "v1",
    });

    const first = await call("counter_increment", { name: "ops-load" }, session);
    const second = await call("counter_increment", { name: "ops-load" }, session);
    const values = [first, second].map(
      (c) => (JSON.parse(toolResultText(c.response) ?? "null") as { value: number }).value,
    );
    expect(values).toEqual([1, 2]);

    // Progress notifications come before the result on the same SSE stream, which opens with the
    // resumability priming event (an id and empty data) that parseMcpResponse must skip.
    const slow = await call("slow_task", { steps: 3, stepMs: 1 }, session, {
      progressToken: "p1",
    });
    expect(slow.reply.contentType).toMatch(/^text\/event-stream/);
    const events = parseSseEvents(slow.reply.text);
    expect(events[0]?.data).toBe("");
    expect(events[0]?.id).toBeTruthy();
    expect(slow.messages.filter((m) => m.method === "notifications/progress")).toHaveLength(3);
    expect(JSON.parse(toolResultText(slow.response) ?? "null")).toMatchObject({ steps: 3 });

    // Resuming the finished stream with Last-Event-ID replays what followed the cursor.
    const resumed = await fetch(s.mcpUrl, {
      method: "GET",
      headers: { ...mcpHeaders(session), "Last-Event-ID": events[0]?.id as string },
    });
    expect(resumed.status).toBe(200);
    const replayed = parseMcpResponse(
      resumed.headers.get("content-type") ?? undefined,
      await resumed.text(),
    );
    expect(isToolSuccess(findResponse(replayed, slow.response?.id as number))).toBe(true);

    // The task tool without task augmentation waits for its result.
    const task = await call("slow_task_async", { steps: 2, stepMs: 1 }, session);
    expect(isToolSuccess(task.response)).toBe(true);

    // Invalid arguments and unknown tools are not successes.
    const invalid = await call("notes_put", { key: "" }, session);
    expect(isToolSuccess(invalid.response)).toBe(false);
    const unknown = await call("no_such_tool", {}, session);
    expect(isToolSuccess(unknown.response)).toBe(false);

    // The server refuses requests without the session header once initialized.
    const noSession = await post(toolCallRequest(++id, "notes_get", { key: "k" }));
    expect(noSession.status).toBe(400);

    const del = await fetch(s.mcpUrl, { method: "DELETE", headers: mcpHeaders(session) });
    expect(del.status).toBe(200);
    await del.text();
    const after = await post(toolCallRequest(++id, "notes_get", { key: "k" }), session);
    expect(after.status).toBe(404);
  }, 30_000);
});
