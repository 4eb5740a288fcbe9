/**
 * Two MCP server instances in separate processes on one real Redis: one session served by
 * both, failover, DELETE everywhere, resumption on the other instance, tasks across instances.
 */
import { CallToolResultSchema, CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectClient,
  type Instance,
  post,
  rawInitialize,
  readEvents,
  roundRobin,
  routed,
  spawnInstance,
  textOf,
} from "./fixtures/mcp-helpers.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const PREFIX = "mcptest:";
const V = { "mcp-protocol-version": "2025-11-25" };

describe("MCP sessions shared by two instances (Redis)", () => {
  let redis: RedisNode;
  let a: Instance;
  let b: Instance;
  let client: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PREFIX };
    [a, b] = await Promise.all([
      spawnInstance({ ...env, INSTANCE: "A" }),
      spawnInstance({ ...env, INSTANCE: "B" }),
    ]);
    client = new Redis(redis.url);
  });

  afterAll(async () => {
    client?.disconnect();
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  it("serves one session from both instances, survives a crash, DELETE ends it everywhere", async () => {
    let targets = [a.url, b.url];
    const rr = roundRobin(() => targets);
    const { client: mcp, transport } = await connectClient(a.url, { fetch: rr.fetch });
    try {
      const id = transport.sessionId as string;
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) {
        if (i % 2 === 0) expect((await mcp.listTools()).tools.length).toBe(8);
        seen.add(textOf(await mcp.callTool({ name: "whoami", arguments: {} })));
        expect(textOf(await mcp.callTool({ name: "echo", arguments: { text: `m${i}` } }))).toBe(
          `m${i}`,
        );
      }
      expect([...seen].sort()).toEqual(["A", "B"]);
      expect(rr.log.some((l) => l.includes(a.url)) && rr.log.some((l) => l.includes(b.url))).toBe(
        true,
      );

      // A crashes: the same session goes on on B.
      await a.kill();
      targets = [b.url];
      expect(textOf(await mcp.callTool({ name: "whoami", arguments: {} }))).toBe("B");

      // A restarted process (new port) serves the old session, rebuilt from Redis.
      a = await spawnInstance({ REDIS_URL: redis.url, PREFIX, INSTANCE: "A" });
      targets = [a.url];
      expect(textOf(await mcp.callTool({ name: "whoami", arguments: {} }))).toBe("A");
      expect(
        textOf(await mcp.callTool({ name: "echo", arguments: { text: "after restart" } })),
      ).toBe("after restart");
      const metrics = await (await fetch(a.url.replace("/mcp", "/metrics"))).text();
      expect(metrics).toMatch(/mcp_session_store_mcp_sessions_rebuilt_total 1/);

      // DELETE on B (A holds a live transport for the session), then A answers 404.
      targets = [b.url];
      await transport.terminateSession();
      expect(await client.exists(`${PREFIX}{${id}}`)).toBe(0);
      expect(await client.exists(`${PREFIX}{${id}}:events`)).toBe(0);
      const list = JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" });
      const onA = await post(a.url, list, { "mcp-session-id": id, ...V });
      expect(onA.status).toBe(404);
      expect(onA.json).toMatchObject({ error: { code: -32001 } });
    } finally {
      await mcp.close();
    }
  });

  it("resumes a dropped stream on the other instance with exactly the missed events", async () => {
    // Calls go to A; a resumption (GET with Last-Event-ID) goes to B.
    const fetchImpl = routed(({ resuming, httpMethod }) =>
      resuming ? b.url : httpMethod === "GET" ? b.url : a.url,
    );
    const one = await connectClient(a.url, { fetch: fetchImpl, name: "one" });
    const two = await connectClient(a.url, { fetch: fetchImpl, name: "two" });
    try {
      const progress: Record<string, number[]> = { one: [], two: [] };
      const [r1, r2] = await Promise.all([
        one.client.callTool({ name: "steps", arguments: { count: 8, closeAfter: 3 } }, undefined, {
          onprogress: (p) => progress.one?.push(p.progress),
        }),
        two.client.callTool({ name: "steps", arguments: { count: 5, closeAfter: 1 } }, undefined, {
          onprogress: (p) => progress.two?.push(p.progress),
        }),
      ]);
      expect(textOf(r1)).toBe("done 8 on A");
      expect(textOf(r2)).toBe("done 5 on A");
      expect(progress.one).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(progress.two).toEqual([1, 2, 3, 4, 5]);
      const metrics = await (await fetch(b.url.replace("/mcp", "/metrics"))).text();
      // B sent the missed events (A only ran the calls).
      const replayed = Number(
        /mcp_session_store_mcp_events_replayed_total (\d+)/.exec(metrics)?.[1],
      );
      expect(replayed).toBeGreaterThanOrEqual(5 + 4);
    } finally {
      await Promise.all([one.client.close(), two.client.close()]);
    }
  });

  it("never replays another session's events (standalone stream ids repeat)", async () => {
    const s1 = await rawInitialize(a.url);
    const s2 = await rawInitialize(a.url);
    const sse = { accept: "text/event-stream", ...V };
    const notify = (text: string) =>
      JSON.stringify({
        jsonrpc: "2.0",
        id: 5,
        method: "tools/call",
        params: { name: "notify", arguments: { text } },
      });

    // S1's standalone stream on A; a notification lands on it with an event id.
    const stream = await fetch(a.url, { headers: { ...sse, "mcp-session-id": s1 } });
    expect(stream.status).toBe(200);
    const reading = readEvents(stream, (e) => e.data.includes("secret-of-s1"));
    expect((await post(a.url, notify("secret-of-s1"), { "mcp-session-id": s1, ...V })).status).toBe(
      200,
    );
    const events = await reading;
    const cursor = events.find((e) => e.data.includes("secret-of-s1"))?.id as string;
    expect(cursor).toMatch(/^_GET_stream:[0-9a-f]{12}:\d+-\d+$/);
    // S2 writes its own standalone events after S1's cursor.
    expect((await post(a.url, notify("secret-of-s2"), { "mcp-session-id": s2, ...V })).status).toBe(
      200,
    );
    expect((await post(a.url, notify("more-of-s1"), { "mcp-session-id": s1, ...V })).status).toBe(
      200,
    );

    // S2 presenting S1's cursor, on either instance: refused, nothing replayed.
    for (const url of [a.url, b.url]) {
      const foreign = await fetch(url, {
        headers: { ...sse, "mcp-session-id": s2, "last-event-id": cursor },
      });
      expect(foreign.status).toBe(400);
      expect(await foreign.text()).not.toContain("secret");
    }
    // S1 resuming on B gets its own later event, not S2's.
    const own = await fetch(b.url, {
      headers: { ...sse, "mcp-session-id": s1, "last-event-id": cursor },
    });
    expect(own.status).toBe(200);
    const replayed = await readEvents(own, (e) => e.data.includes("more-of-s1"));
    const data = replayed.map((e) => e.data).join("\n");
    expect(data).toContain("more-of-s1");
    expect(data).not.toContain("secret-of-s2");
    expect(data).not.toContain("secret-of-s1");
  });

  it("creates a task on A and reads it and its result from B; other sessions cannot see it", async () => {
    const fetchImpl = routed(({ rpcMethod }) => (rpcMethod === "tools/call" ? a.url : b.url));
    const owner = await connectClient(a.url, { fetch: fetchImpl });
    const stranger = await connectClient(b.url);
    try {
      const created = await owner.client.request(
        {
          method: "tools/call",
          params: { name: "delay-task", arguments: { ms: 50 }, task: { ttl: 60_000 } },
        },
        CreateTaskResultSchema,
      );
      const taskId = created.task.taskId;
      const got = await owner.client.experimental.tasks.getTask(taskId);
      expect(got.taskId).toBe(taskId);
      const result = await owner.client.experimental.tasks.getTaskResult(
        taskId,
        CallToolResultSchema,
      );
      expect(textOf(result)).toBe("slept 50 on A");
      expect((await owner.client.experimental.tasks.getTask(taskId)).status).toBe("completed");
      await expect(stranger.client.experimental.tasks.getTask(taskId)).rejects.toThrow();
      await expect(
        stranger.client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema),
      ).rejects.toThrow();
      expect((await stranger.client.experimental.tasks.listTasks()).tasks).toEqual([]);
    } finally {
      await Promise.all([owner.client.close(), stranger.client.close()]);
    }
  });

  it("puts an expiry on every key it writes", async () => {
    let keys = 0;
    let cursor = "0";
    do {
      const [next, batch] = await client.scan(cursor, "MATCH", `${PREFIX}*`, "COUNT", 500);
      cursor = next;
      for (const key of batch) {
        keys++;
        expect(await client.pttl(key), key).toBeGreaterThan(0);
      }
    } while (cursor !== "0");
    expect(keys).toBeGreaterThan(3);
  });
});
