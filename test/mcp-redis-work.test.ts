/**
 * Redis work per 2025-era MCP request, counted from outside the code (docs/perf-mcp-cuts.md):
 * `INFO commandstats` deltas on a spawned redis-server (commands executed, Lua calls included)
 * and a TCP relay that sees every byte the handlers send (commands sent, round trips), as
 * `bench/mcp-redis-work.ts` does. Two handlers in this process share a key prefix (a session
 * opened on A and used on B is adopted there); a third answers with plain JSON. A regression in
 * the Redis work of a request kind fails here.
 */
import http from "node:http";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CountingRelay,
  commandStats,
  measureWork,
  type WorkCounts,
} from "../bench/redis-work-probe.js";
import {
  createMcpHttpHandler,
  type McpServices,
  registerRedisBackedServices,
} from "../src/mcp/index.js";
import { buildServer } from "./fixtures/mcp-server.js";
import { type RedisNode, startRedis } from "./support/redis.js";

interface Handler {
  url: string;
  close(): Promise<void>;
}

async function startHandler(
  redisUrl: string,
  name: string,
  prefix: string,
  json: boolean,
): Promise<Handler> {
  const services: McpServices = await registerRedisBackedServices(null, {
    redisUrl,
    prefix,
    fallback: "error",
  });
  const handler = createMcpHttpHandler({
    services,
    createServer: () => buildServer(name, services),
    ...(json ? { transportOptions: { enableJsonResponse: true } } : {}),
  });
  const server = http.createServer((req, res) => void handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await handler.close();
      await services.close();
    },
  };
}

const HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  "mcp-protocol-version": "2025-11-25",
};

async function send(url: string, body: unknown, session?: string): Promise<Response> {
  const res = await fetch(url, {
    method: "POST",
    headers: session === undefined ? HEADERS : { ...HEADERS, "mcp-session-id": session },
    body: JSON.stringify(body),
  });
  await res.text();
  return res;
}

async function initialize(url: string): Promise<string> {
  const res = await send(url, {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "work", version: "1.0.0" },
    },
  });
  const id = res.headers.get("mcp-session-id");
  if (res.status !== 200 || id === null) throw new Error(`initialize: ${res.status}`);
  return id;
}

async function initialized(url: string, session: string): Promise<void> {
  const res = await send(url, { jsonrpc: "2.0", method: "notifications/initialized" }, session);
  expect(res.status).toBe(202);
}

async function echo(url: string, session: string): Promise<void> {
  const res = await send(
    url,
    {
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: { name: "echo", arguments: { text: "x" } },
    },
    session,
  );
  expect(res.status).toBe(200);
}

async function remove(url: string, session: string): Promise<void> {
  const res = await fetch(url, {
    method: "DELETE",
    headers: { ...HEADERS, "mcp-session-id": session },
  });
  await res.text();
  expect(res.status).toBe(200);
}

describe("Redis work per 2025-era MCP request", () => {
  let redis: RedisNode;
  let relay: CountingRelay;
  let stats: Redis;
  let A: Handler;
  let B: Handler;
  let J: Handler;

  beforeAll(async () => {
    redis = await startRedis();
    relay = new CountingRelay(redis.host, redis.port);
    const port = await relay.listen();
    const url = `redis://127.0.0.1:${port}`;
    stats = new Redis(redis.port, redis.host, { lazyConnect: true });
    await stats.connect();
    A = await startHandler(url, "a", "work:", false);
    B = await startHandler(url, "b", "work:", false);
    J = await startHandler(url, "j", "json:", true);
  });

  afterAll(async () => {
    // MCP_WORK_PRINT=1 prints the counts (docs/perf-mcp-cuts.md).
    if (process.env.MCP_WORK_PRINT === "1") console.info(seen.join("\n"));
    await A?.close();
    await B?.close();
    await J?.close();
    stats?.disconnect();
    await relay?.close();
    await redis?.stop();
  });

  const seen: string[] = [];

  /** The fewest of 3 samples of each count (a sample can catch a background write). */
  async function count(prepare: () => Promise<() => Promise<void>>) {
    const works: WorkCounts[] = [];
    for (let i = 0; i < 3; i++) {
      const work = await prepare();
      await new Promise((resolve) => setTimeout(resolve, 100));
      works.push(await measureWork(relay, stats, work, 40));
    }
    const least = (of: (w: WorkCounts) => number) => Math.min(...works.map(of));
    seen.push(
      `${least((w) => w.executedTotal)} executed, ${least((w) => w.sent.length)} sent, ${least((w) => w.roundTrips)} round trips: ${works[0]?.sent.map((c) => c.name).join(" ")}`,
    );
    return {
      roundTrips: least((w) => w.roundTrips),
      sent: least((w) => w.sent.length),
      executed: least((w) => w.executedTotal),
      names: works.map((w) => w.sent.map((c) => c.name).join(" ")),
    };
  }

  it("a tool call on a known session with SSE (resumability on): <= 2 round trips, <= 4 commands sent", async () => {
    const id = await initialize(A.url);
    await initialized(A.url, id);
    await echo(A.url, id);
    const work = await count(async () => () => echo(A.url, id));
    expect(work.roundTrips, work.names.join(" | ")).toBeLessThanOrEqual(2);
    // The target is 4; 3 today: the stream's PEXPIRE and the touch, then the append.
    expect(work.sent, work.names.join(" | ")).toBeLessThanOrEqual(3);
    // touch (EVALSHA HMGET PEXPIRE), the stream's PEXPIRE, append (EVALSHA XREVRANGE XADD), PUBLISH; was 13.
    expect(work.executed, work.names.join(" | ")).toBeLessThanOrEqual(8);
  });

  it("a tool call answered with plain JSON: 1 round trip", async () => {
    const id = await initialize(J.url);
    await initialized(J.url, id);
    const work = await count(async () => () => echo(J.url, id));
    expect(work.roundTrips, work.names.join(" | ")).toBe(1);
    expect(work.executed).toBeLessThanOrEqual(4);
    // No event stream for a session that never answered with SSE.
    expect(await stats.keys("json:*events*")).toEqual([]);
  });

  it("initialize, notifications/initialized, adoption and DELETE stay within their counts", async () => {
    const init = await count(async () => async () => void (await initialize(A.url)));
    // The record's script, then the response's append (was 4).
    expect(init.roundTrips, init.names.join(" | ")).toBeLessThanOrEqual(2);
    const notified = await count(async () => {
      const id = await initialize(A.url);
      return () => initialized(A.url, id);
    });
    expect(notified.roundTrips, notified.names.join(" | ")).toBe(1);
    const adopted = await count(async () => {
      const id = await initialize(A.url);
      await initialized(A.url, id);
      return () => echo(B.url, id);
    });
    // Record read, touch, the call's event (was 7 round trips with a tool reading Redis, 6 without).
    expect(adopted.roundTrips, adopted.names.join(" | ")).toBeLessThanOrEqual(3);
    expect(adopted.names.every((n) => (n.match(/PUBLISH/g) ?? []).length <= 1)).toBe(true);
    const deleted = await count(async () => {
      const id = await initialize(A.url);
      await initialized(A.url, id);
      return () => remove(A.url, id);
    });
    expect(deleted.roundTrips, deleted.names.join(" | ")).toBe(1);
  });

  it("publishes an event's wake-up only while an instance follows the session", async () => {
    const id = await initialize(A.url);
    await initialized(A.url, id);
    const quiet = await measureWork(relay, stats, () => echo(A.url, id), 40);
    expect(quiet.executed.publish ?? 0).toBe(0);
    // B holds the session's standalone GET stream: it marks the session followed.
    const abort = new AbortController();
    const get = await fetch(B.url, {
      headers: { ...HEADERS, accept: "text/event-stream", "mcp-session-id": id },
      signal: abort.signal,
    });
    expect(get.status).toBe(200);
    try {
      await expect
        .poll(async () => (await stats.exists(`work:{${id}}:followed`)) === 1, { timeout: 3000 })
        .toBe(true);
      const followed = await measureWork(relay, stats, () => echo(A.url, id), 40);
      expect(followed.executed.publish ?? 0).toBe(1);
      // The call's 2 round trips, and B's read of the log once woken.
      expect(followed.roundTrips).toBeLessThanOrEqual(3);
      expect(followed.sent.some((c) => c.name === "XRANGE")).toBe(true);
    } finally {
      abort.abort();
      await get.body?.cancel().catch(() => {});
    }
  });

  it("stores no priming event: a session's stream holds only what a client can be sent", async () => {
    const id = await initialize(A.url);
    await initialized(A.url, id);
    for (let i = 0; i < 3; i++) await echo(A.url, id);
    const keys = await stats.keys(`work:*${id}*events*`);
    expect(keys).toHaveLength(1);
    // initialize's response and 3 responses, nothing empty.
    expect(await stats.xlen(keys[0] as string)).toBe(4);
    const ttl = await stats.pttl(keys[0] as string);
    expect(ttl).toBeGreaterThan(0);
    const before = await commandStats(stats);
    expect(before.xadd).toBeGreaterThan(0);
  });
});
