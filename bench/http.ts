/**
 * HTTP benchmark of the reference server (autocannon), in one run, for both protocol eras:
 * - 2025-11-25 sessions: memory store (1 instance) | Redis store (1 instance) | 2 instances +
 *   1 Redis behind nginx. Each autocannon connection plays whole MCP sessions: initialize,
 *   notifications/initialized, notes_put, notes_get, counter_increment (own counter per
 *   connection), DELETE; then again.
 * - 2026-07-28 tool calls (per-request `_meta`, no session): 1 instance on the memory store (the
 *   SDK's in-memory bus) | 1 instance with Redis services | 2 instances + 1 Redis behind nginx.
 *   Each connection plays: counter_increment (new counter handle), counter_increment (that
 *   handle), notes_put (new notebook handle), notes_get (that notebook); then again.
 * Every setup runs ROUNDS times (interleaved); the medians are reported, with the ratio to the
 * memory store of the same run. Errors (socket errors, timeouts, non-2xx, JSON-RPC errors and
 * failed tool results) must be 0.
 *
 *   npm run bench:http        # BENCH_DURATION=5 BENCH_CONNECTIONS=8 BENCH_ROUNDS=3
 *
 * Writes bench/results/<YYYY-MM-DD>/http.{json,md}.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import os from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { type NginxHandle, startNginx } from "../test/support/nginx.js";
import { type RedisNode, startRedis } from "../test/support/redis.js";
import { type ServerProcess, startServer } from "../test/support/server.js";
import { knob } from "./quick.js";

const DURATION = knob("BENCH_DURATION", 5, 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const ROUNDS = knob("BENCH_ROUNDS", 3, 1);

const HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

interface Context {
  sessionId?: string;
  counter?: string;
  /** Handles of the 2026-07-28 sequence. */
  counterHandle?: string;
  notebook?: string;
  [key: string]: unknown;
}

/** JSON-RPC errors and failed tool results inside 200 responses, counted by `onResponse`. */
let rpcErrors = 0;

function countRpcErrors(_status: number, body: string): void {
  if (body.includes('"error":') || body.includes('"isError":true')) rpcErrors++;
}

function rpc(id: number, method: string, params: unknown): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, params });
}

function withSession(request: autocannon.Request, context: object): autocannon.Request {
  const ctx = context as Context;
  // No session (the initialize failed): restart the sequence.
  if (ctx.sessionId === undefined) return undefined as unknown as autocannon.Request;
  return {
    ...request,
    headers: {
      ...request.headers,
      "mcp-session-id": ctx.sessionId,
      "mcp-protocol-version": "2025-11-25",
    },
  };
}

function sessionRequests(): autocannon.Request[] {
  const call = (id: number, name: string, args: (ctx: Context) => unknown) => ({
    method: "POST" as const,
    path: "/mcp",
    headers: HEADERS,
    setupRequest: (request: autocannon.Request, context: object) => {
      const next = withSession(request, context);
      if (!next) return next;
      return {
        ...next,
        body: rpc(id, "tools/call", { name, arguments: args(context as Context) }),
      };
    },
    onResponse: countRpcErrors,
  });
  return [
    {
      method: "POST",
      path: "/mcp",
      headers: HEADERS,
      body: rpc(1, "initialize", {
        protocolVersion: "2025-11-25",
        capabilities: {},
        clientInfo: { name: "bench", version: "1.0.0" },
      }),
      setupRequest: (request: autocannon.Request, context: object) => {
        const ctx = context as Context;
        ctx.sessionId = undefined;
        ctx.counter ??= `bench-${Math.random().toString(36).slice(2, 10)}`;
        return request;
      },
      onResponse: (
        status: number,
        _body: string,
        context: object,
        headers?: IncomingHttpHeaders,
      ) => {
        const id = headers?.["mcp-session-id"];
        (context as Context).sessionId = status === 200 && typeof id === "string" ? id : undefined;
      },
    },
    {
      method: "POST",
      path: "/mcp",
      headers: HEADERS,
      body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
      setupRequest: withSession,
    },
    call(2, "notes_put", () => ({ key: "k", value: "x".repeat(64) })),
    call(3, "notes_get", () => ({ key: "k" })),
    call(4, "counter_increment", (ctx) => ({ name: ctx.counter })),
    { method: "DELETE", path: "/mcp", headers: HEADERS, setupRequest: withSession },
  ];
}

const MODERN_META = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientInfo": { name: "bench", version: "1.0.0" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

/** The handle a 2026-07-28 demo tool returned (`structuredContent[field]`), if any. */
function handleIn(body: string, field: string): string | undefined {
  try {
    const value = (JSON.parse(body) as { result?: { structuredContent?: Record<string, unknown> } })
      .result?.structuredContent?.[field];
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Tool calls of protocol 2026-07-28: no session, the envelope on every request, handles between calls. */
function modernRequests(): autocannon.Request[] {
  const call = (
    id: number,
    name: string,
    args: (ctx: Context) => Record<string, unknown> | undefined,
    keep?: { field: "counter" | "notebook"; into: "counterHandle" | "notebook" },
  ): autocannon.Request => ({
    method: "POST",
    path: "/mcp",
    headers: {
      ...HEADERS,
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": "tools/call",
      "mcp-name": name,
    },
    setupRequest: (request: autocannon.Request, context: object) => {
      const params = args(context as Context);
      // A handle the previous call should have returned is missing: restart the sequence.
      if (params === undefined) return undefined as unknown as autocannon.Request;
      return {
        ...request,
        body: rpc(id, "tools/call", { name, arguments: params, _meta: MODERN_META }),
      };
    },
    onResponse: (status: number, body: string, context: object) => {
      countRpcErrors(status, body);
      if (keep !== undefined) (context as Context)[keep.into] = handleIn(body, keep.field);
    },
  });
  return [
    call(1, "counter_increment", () => ({}), { field: "counter", into: "counterHandle" }),
    call(2, "counter_increment", (ctx) =>
      ctx.counterHandle === undefined ? undefined : { counter: ctx.counterHandle },
    ),
    call(3, "notes_put", () => ({ key: "k", value: "x".repeat(64) }), {
      field: "notebook",
      into: "notebook",
    }),
    call(4, "notes_get", (ctx) =>
      ctx.notebook === undefined ? undefined : { notebook: ctx.notebook, key: "k" },
    ),
  ];
}

interface Sample {
  requestsPerSec: number;
  sessionsPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}

async function measure(url: string, era: Era): Promise<Sample> {
  const requests = era === "2025-11-25" ? sessionRequests() : modernRequests();
  rpcErrors = 0;
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: DURATION,
    requests,
    timeout: 10,
  });
  return {
    requestsPerSec: result.requests.average,
    sessionsPerSec: result.requests.average / requests.length,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx + rpcErrors,
  };
}

type Era = "2025-11-25" | "2026-07-28";

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

async function main(): Promise<void> {
  const redis: RedisNode = await startRedis();
  const servers: ServerProcess[] = [];
  let nginx: NginxHandle | undefined;
  try {
    // Multi round-trip states must verify on both instances of the pair: one key for all.
    const key = { REQUEST_STATE_KEY: "bench-request-state-key-0123456789abcdefghij" };
    const memory = await startServer({ env: key });
    const single = await startServer({
      env: { ...key, REDIS_URL: redis.url, KEY_PREFIX: "bench1:" },
    });
    const pairEnv = { ...key, REDIS_URL: redis.url, KEY_PREFIX: "bench2:" };
    const a = await startServer({ env: pairEnv });
    const b = await startServer({ env: pairEnv });
    servers.push(memory, single, a, b);
    nginx = await startNginx([a.port, b.port]);
    const setups: Array<{ name: string; url: string; era: Era }> = [
      { name: "sessions: memory store, 1 instance", url: memory.url, era: "2025-11-25" },
      { name: "sessions: Redis store, 1 instance", url: single.url, era: "2025-11-25" },
      {
        name: "sessions: Redis store, 2 instances behind nginx",
        url: nginx.url,
        era: "2025-11-25",
      },
      {
        name: "2026-07-28: 1 instance, SDK in-memory bus, memory handles",
        url: memory.url,
        era: "2026-07-28",
      },
      { name: "2026-07-28: Redis services, 1 instance", url: single.url, era: "2026-07-28" },
      {
        name: "2026-07-28: Redis services, 2 instances behind nginx",
        url: nginx.url,
        era: "2026-07-28",
      },
    ];
    const samples = new Map<string, Sample[]>(setups.map((s) => [s.name, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const setup of setups) {
        const sample = await measure(`${setup.url}/mcp`, setup.era);
        samples.get(setup.name)?.push(sample);
        console.log(
          `round ${round} ${setup.name}: ${sample.requestsPerSec.toFixed(0)} req/s, p50 ${sample.p50} ms, p99 ${sample.p99} ms, errors ${sample.errors}`,
        );
      }
    }
    const rows = setups.map((setup) => {
      const list = samples.get(setup.name) ?? [];
      return {
        setup: setup.name,
        era: setup.era,
        requestsPerSec: median(list.map((s) => s.requestsPerSec)),
        sessionsPerSec: median(list.map((s) => s.sessionsPerSec)),
        p50Ms: median(list.map((s) => s.p50)),
        p99Ms: median(list.map((s) => s.p99)),
        errors: list.reduce((sum, s) => sum + s.errors, 0),
        rounds: list,
      };
    });
    // Each era against its own single-process memory setup.
    const baseline = (era: Era) => rows.find((r) => r.era === era)?.requestsPerSec ?? Number.NaN;
    const date = new Date().toISOString().slice(0, 10);
    const dir = path.join(import.meta.dirname, "results", date);
    mkdirSync(dir, { recursive: true });
    const meta = {
      date,
      command: "npm run bench:http",
      connections: CONNECTIONS,
      durationSeconds: DURATION,
      rounds: ROUNDS,
      session:
        "initialize, notifications/initialized, notes_put, notes_get, counter_increment, DELETE",
      modern:
        "counter_increment (new handle), counter_increment (that handle), notes_put (new notebook), notes_get",
      node: process.version,
      cpus: os.cpus().length,
    };
    writeFileSync(path.join(dir, "http.json"), `${JSON.stringify({ ...meta, rows }, null, 2)}\n`);
    const md = [
      `## HTTP: reference server under autocannon (${CONNECTIONS} connections, ${DURATION} s x ${ROUNDS} rounds, medians)`,
      "",
      `Sessions (2025-11-25): one MCP session per connection at a time: ${meta.session}. Protocol 2026-07-28: no session, per-request \`_meta\`, each connection repeats ${meta.modern} (a "sequence" below). Node ${process.version}, ${meta.cpus} CPUs, everything on one machine.`,
      "",
      "| setup | requests/s | sessions or sequences/s | p50 ms | p99 ms | errors | vs memory, same era |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
      ...rows.map(
        (r) =>
          `| ${r.setup} | ${r.requestsPerSec.toFixed(0)} | ${r.sessionsPerSec.toFixed(0)} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors} | ${(r.requestsPerSec / baseline(r.era)).toFixed(2)}x |`,
      ),
      "",
      `Command: \`${meta.command}\` (BENCH_DURATION, BENCH_CONNECTIONS, BENCH_ROUNDS override).`,
      "",
    ].join("\n");
    writeFileSync(path.join(dir, "http.md"), md);
    console.log(md);
    const failed = rows.filter((r) => r.errors > 0);
    if (failed.length > 0) {
      console.error(`errors in: ${failed.map((r) => r.setup).join(", ")}`);
      process.exitCode = 1;
    }
  } finally {
    await nginx?.stop();
    await Promise.all(servers.map((s) => s.stop()));
    await redis.stop();
  }
}

await main();
