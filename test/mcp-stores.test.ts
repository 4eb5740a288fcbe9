/**
 * The MCP event store, task store and task message queue: one suite, run on memory and on a
 * real Redis.
 */
import type {
  QueuedMessage,
  TaskMessageQueue,
  TaskStore,
} from "@modelcontextprotocol/sdk/experimental/tasks/interfaces.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createRedisSessionStore } from "../src/factory.js";
import { createMcpEventStore, createMcpTaskStores, type McpEventStore } from "../src/mcp/index.js";
import { type RedisAccess, redisAccessOf } from "../src/mcp/support.js";
import type { SessionStore } from "../src/types.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const note = (n: number): JSONRPCMessage => ({
  jsonrpc: "2.0",
  method: "notifications/message",
  params: { n },
});
const reply = (id: number): JSONRPCMessage => ({ jsonrpc: "2.0", id, result: {} });
const req = { method: "tools/call", params: { name: "x" } };

async function replay(store: ReturnType<McpEventStore["forSession"]>, cursor: string) {
  const got: Array<[string, JSONRPCMessage]> = [];
  await store.replayEventsAfter(cursor, {
    send: async (id, m) => void got.push([id, m as JSONRPCMessage]),
  });
  return got;
}

let redisNode: RedisNode;
let redisStore: SessionStore;
let access: RedisAccess;
let raw: Redis;
let prefixNo = 0;

beforeAll(async () => {
  redisNode = await startRedis();
  redisStore = await createRedisSessionStore({ redisUrl: redisNode.url, prefix: "mcpstores:" });
  access = redisAccessOf(redisStore) as RedisAccess;
  raw = new Redis(redisNode.url);
});

afterAll(async () => {
  raw?.disconnect();
  await redisStore?.disconnect();
  await redisNode?.stop();
});

const backends: Array<[string, () => RedisAccess | undefined]> = [
  ["memory", () => undefined],
  [
    "redis",
    () => ({
      ...access,
      key: (id: string, suffix?: string) => access.key(`t${prefixNo}-${id}`, suffix),
    }),
  ],
];

describe.each(backends)("event store (%s)", (backend, redis) => {
  function make(
    options: {
      eventTtl?: number;
      maxEventsPerSession?: number;
      maxEventBytesPerSession?: number;
    } = {},
  ) {
    prefixNo++;
    const registry = new Registry();
    return { events: createMcpEventStore(redis(), { ...options, registry }), registry };
  }

  it("mints increasing ids and replays exactly the events after a cursor, priming skipped", async () => {
    const { events, registry } = make();
    const s = events.forSession("s1");
    const prime = await s.storeEvent("stream-1", {} as JSONRPCMessage);
    const ids = [await s.storeEvent("stream-1", note(1)), await s.storeEvent("other", note(99))];
    ids.push(await s.storeEvent("stream-1", note(2)), await s.storeEvent("stream-1", reply(1)));
    expect(prime).toMatch(/^stream-1:[0-9a-f]{12}:\d+-\d+$/);
    expect(new Set(ids).size).toBe(4);
    expect(await s.getStreamIdForEventId(ids[0] as string)).toBe("stream-1");
    const got = await replay(s, prime);
    expect(got.map(([, m]) => m)).toEqual([note(1), note(2), reply(1)]);
    expect((await replay(s, ids[2] as string)).map(([, m]) => m)).toEqual([reply(1)]);
    const text = await registry.metrics();
    // The priming event is written nowhere: its id is "the start of its request stream".
    expect(prime).toMatch(/^stream-1:[0-9a-f]{12}:0-0$/);
    expect(await s.getStreamIdForEventId(prime)).toBe("stream-1");
    expect(text).toMatch(/mcp_session_store_mcp_events_stored_total 4/);
    expect(text).toMatch(/mcp_session_store_mcp_events_replayed_total 4/);
  });

  it("keeps sessions apart even with the same stream id", async () => {
    const { events } = make();
    const one = events.forSession("one");
    const two = events.forSession("two");
    const cursor = await one.storeEvent("_GET_stream", note(1));
    await two.storeEvent("_GET_stream", note(2));
    await one.storeEvent("_GET_stream", note(3));
    expect(await two.getStreamIdForEventId(cursor)).toBeUndefined();
    await expect(replay(two, cursor)).rejects.toMatchObject({ code: "ERR_INVALID_ARGUMENT" });
    expect((await replay(one, cursor)).map(([, m]) => m)).toEqual([note(3)]);
  });

  it("refuses malformed cursors", async () => {
    const { events } = make();
    const s = events.forSession("s");
    await s.storeEvent("a", note(1));
    const tag = (await s.storeEvent("a", note(2))).split(":")[1];
    for (const bad of [
      "",
      "nope",
      "a:",
      ":1-0",
      "a:1-0",
      `a:${tag}:1`,
      `a:${tag}:x-1`,
      `a:${tag}:${"9".repeat(30)}-0`,
      `a b:${tag}:1-0`,
      `a:ABC:1-0`,
    ]) {
      expect(await s.getStreamIdForEventId(bad)).toBeUndefined();
    }
  });

  it("caps each session's log and drops a session's events on delete", async () => {
    const { events } = make({ maxEventsPerSession: 3 });
    const s = events.forSession("capped");
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) ids.push(await s.storeEvent("st", note(i)));
    expect(await s.getStreamIdForEventId(ids[0] as string)).toBeUndefined();
    expect(await s.getStreamIdForEventId(ids[2] as string)).toBe("st");
    expect((await replay(s, ids[2] as string)).map(([, m]) => m)).toEqual([note(4), note(5)]);
    await events.deleteSession("capped");
    expect(await s.getStreamIdForEventId(ids[4] as string)).toBeUndefined();
  });

  it("caps each session's log in bytes, the newest event always kept", async () => {
    const size = Buffer.byteLength("st") + Buffer.byteLength(JSON.stringify(note(1)));
    const { events } = make({ maxEventBytesPerSession: 3 * size });
    const s = events.forSession("bytes");
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) ids.push(await s.storeEvent("st", note(i)));
    expect(await s.getStreamIdForEventId(ids[1] as string)).toBeUndefined();
    expect(await s.getStreamIdForEventId(ids[2] as string)).toBe("st");
    expect((await replay(s, ids[2] as string)).map(([, m]) => m)).toEqual([note(4), note(5)]);
    const big = { jsonrpc: "2.0" as const, method: "big", params: { x: "y".repeat(4 * size) } };
    const last = await s.storeEvent("st", big);
    expect(await s.getStreamIdForEventId(ids[4] as string)).toBeUndefined();
    expect(await s.getStreamIdForEventId(last)).toBe("st");
    // The next event trims the big one: the two together exceed the budget.
    const next = await s.storeEvent("st", note(6));
    expect(await s.getStreamIdForEventId(next)).toBe("st");
    expect(await s.getStreamIdForEventId(last)).toBeUndefined();
    if (backend === "redis") {
      expect(await raw.xlen(redis()?.key("bytes", "events") as string)).toBe(1);
    }
  });

  it("slides a session's log expiry with slide()", async () => {
    const { events } = make({ eventTtl: 0.3 });
    const s = events.forSession("slid");
    const id = await s.storeEvent("st", note(1));
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 120));
      await events.slide("slid");
    }
    expect(await s.getStreamIdForEventId(id)).toBe("st");
  });

  it("expires a session's events after eventTtl", async () => {
    const { events } = make({ eventTtl: 0.2 });
    const s = events.forSession("ttl");
    const id = await s.storeEvent("st", note(1));
    if (backend === "redis") {
      const pttl = await raw.pttl(redis()?.key("ttl", "events") as string);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(200);
    }
    expect(await s.getStreamIdForEventId(id)).toBe("st");
    await vi.waitFor(async () => expect(await s.getStreamIdForEventId(id)).toBeUndefined(), {
      timeout: 3000,
      interval: 50,
    });
  });
});

describe.each(backends)("task store and queue (%s)", (_backend, redis) => {
  function make(options: { taskPageSize?: number; maxQueueSize?: number } = {}) {
    prefixNo++;
    const registry = new Registry();
    const stores = createMcpTaskStores(redis(), { ...options, registry });
    return { ...stores, registry };
  }

  it("binds tasks to their session", async () => {
    const { taskStore } = make();
    const task = await taskStore.createTask({ ttl: 60_000 }, 1, req, "owner");
    expect(task).toMatchObject({ status: "working", ttl: 60_000, pollInterval: 1000 });
    expect(await taskStore.getTask(task.taskId, "owner")).toEqual(task);
    expect(await taskStore.getTask(task.taskId, "intruder")).toBeNull();
    await expect(
      taskStore.updateTaskStatus(task.taskId, "cancelled", undefined, "intruder"),
    ).rejects.toMatchObject({
      code: "ERR_INVALID_ARGUMENT",
    });
    await expect(taskStore.getTaskResult(task.taskId, "intruder")).rejects.toThrow();
    expect((await taskStore.listTasks(undefined, "intruder")).tasks).toEqual([]);
    expect((await taskStore.getTask(task.taskId, "owner"))?.status).toBe("working");
    // A task created without a session is visible to every session.
    const open = await taskStore.createTask({}, 2, req);
    expect((await taskStore.getTask(open.taskId, "anyone"))?.taskId).toBe(open.taskId);
  });

  it("never changes a terminal status, even under concurrent transitions", async () => {
    const { taskStore, registry } = make();
    const task = await taskStore.createTask({ ttl: 60_000 }, 1, req, "s");
    await taskStore.updateTaskStatus(task.taskId, "input_required", "waiting", "s");
    expect(await taskStore.getTask(task.taskId, "s")).toMatchObject({
      status: "input_required",
      statusMessage: "waiting",
    });
    const outcomes = await Promise.allSettled([
      ...Array.from({ length: 5 }, (_, i) =>
        taskStore.storeTaskResult(
          task.taskId,
          "completed",
          { content: [{ type: "text", text: `r${i}` }] },
          "s",
        ),
      ),
      ...Array.from({ length: 5 }, () =>
        taskStore.updateTaskStatus(task.taskId, "cancelled", undefined, "s"),
      ),
    ]);
    const won = outcomes.filter((o) => o.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const o of outcomes) {
      if (o.status === "rejected") expect(o.reason).toMatchObject({ code: "ERR_CONFLICT" });
    }
    const final = await taskStore.getTask(task.taskId, "s");
    expect(["completed", "cancelled"]).toContain(final?.status);
    await expect(
      taskStore.updateTaskStatus(task.taskId, "working", undefined, "s"),
    ).rejects.toMatchObject({
      code: "ERR_CONFLICT",
    });
    expect((await taskStore.getTask(task.taskId, "s"))?.status).toBe(final?.status);
    expect(await registry.metrics()).toMatch(
      /mcp_session_store_mcp_tasks_created_total\{status="working"\} 1/,
    );
  });

  it("stores and returns results", async () => {
    const { taskStore } = make();
    const task = await taskStore.createTask({}, "r", req, "s");
    await expect(taskStore.getTaskResult(task.taskId, "s")).rejects.toThrow(/no result/);
    const result = { content: [{ type: "text", text: "ok" }] };
    await taskStore.storeTaskResult(task.taskId, "completed", result, "s");
    expect(await taskStore.getTaskResult(task.taskId, "s")).toEqual(result);
    await expect(
      taskStore.storeTaskResult(task.taskId, "failed", result, "s"),
    ).rejects.toMatchObject({
      code: "ERR_CONFLICT",
    });
  });

  it("pages listTasks in creation order", async () => {
    const { taskStore } = make({ taskPageSize: 3 });
    const created: string[] = [];
    for (let i = 0; i < 7; i++) created.push((await taskStore.createTask({}, i, req, "p")).taskId);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await taskStore.listTasks(cursor, "p");
      seen.push(...page.tasks.map((t) => t.taskId));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== undefined);
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual([...created].sort());
    await expect(taskStore.listTasks("unknown-cursor", "p")).rejects.toMatchObject({
      code: "ERR_INVALID_ARGUMENT",
    });
  });

  it("expires tasks after their ttl", async () => {
    const { taskStore } = make();
    const task = await taskStore.createTask({ ttl: 150 }, 1, req, "e");
    expect(await taskStore.getTask(task.taskId, "e")).not.toBeNull();
    await vi.waitFor(async () => expect(await taskStore.getTask(task.taskId, "e")).toBeNull(), {
      timeout: 3000,
      interval: 50,
    });
  });

  it("queues messages FIFO per task and session, with a maximum size", async () => {
    const { taskMessageQueue: q } = make({ maxQueueSize: 3 }) as {
      taskMessageQueue: TaskMessageQueue;
      taskStore: TaskStore;
    };
    const msg = (n: number): QueuedMessage => ({
      type: "notification",
      timestamp: n,
      message: { jsonrpc: "2.0", method: "notifications/message", params: { n } },
    });
    await q.enqueue("t1", msg(1), "s");
    await q.enqueue("t1", msg(2), "s");
    await expect(q.enqueue("t1", msg(3), "s", 2)).rejects.toThrow(/overflow/);
    await q.enqueue("t1", msg(3), "s");
    await expect(q.enqueue("t1", msg(4), "s")).rejects.toThrow(/overflow/);
    expect(await q.dequeue("t1", "other")).toBeUndefined();
    expect(await q.dequeue("t1", "s")).toEqual(msg(1));
    expect(await q.dequeueAll("t1", "s")).toEqual([msg(2), msg(3)]);
    expect(await q.dequeue("t1", "s")).toBeUndefined();
  });
});

describe("redis keys", () => {
  it("every key written by the MCP stores has an expiry", async () => {
    let cursor = "0";
    let n = 0;
    do {
      const [next, keys] = await raw.scan(cursor, "MATCH", "mcpstores:*", "COUNT", 1000);
      cursor = next;
      for (const key of keys) {
        n++;
        expect(await raw.pttl(key), key).toBeGreaterThan(0);
      }
    } while (cursor !== "0");
    expect(n).toBeGreaterThan(5);
  });
});
