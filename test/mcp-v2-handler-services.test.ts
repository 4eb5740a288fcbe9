import { createServer } from "node:http";
import type { ServerEventBus } from "@modelcontextprotocol/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskStatusEvent } from "../src/mcp/event-bus.js";
import { registerRedisBackedServices } from "../src/mcp/v2/index.js";
import { eventually } from "./support/eventually.js";
import { freePort, type RedisNode, startRedis } from "./support/redis.js";

function capture() {
  const lines: string[] = [];
  const logger = {
    info: (m: string) => lines.push(`info ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
  };
  return { lines, logger };
}

const keys = { current: "services-test-key-0123456789abcdef0123" };

describe("registerRedisBackedServices (v2)", () => {
  let node: RedisNode;
  beforeAll(async () => {
    node = await startRedis();
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("on Redis: every part shares the store's Redis and its registry, instrumented", async () => {
    const services = await registerRedisBackedServices({
      redisUrl: node.url,
      prefix: "svc:",
      requestStates: { keys },
    });
    try {
      expect(services.sessionStore.backend).toBe("redis");
      const bus: ServerEventBus = services.eventBus;
      bus.publish({ kind: "tools_list_changed" });
      const h = await services.handles.create({ n: 1 }, { principal: "p" });
      const state = await services.requestStates.mint({ step: 1 });
      expect(await services.requestStates.consume(state)).toEqual({ step: 1 });
      const task = await services.tasks.create({ principal: "p" });
      expect((await services.tasks.get(task.taskId, { principal: "p" })).status).toBe("working");
      expect((services.sessionStore as { registry?: unknown }).registry).toBe(services.registry);
      const text = await services.registry.metrics();
      expect(text).toContain('mcp_session_store_bus_published_total{kind="tools_list_changed"} 1');
      expect(text).toContain(
        'mcp_session_store_handle_operations_total{operation="create",outcome="ok"} 1',
      );
      expect(text).toContain("mcp_session_store_request_state_consumed_total");
      expect(text).toContain('mcp_session_store_task_transitions_total{status="working"} 1');
      expect(text).not.toContain(h);
      expect(text).not.toContain(task.taskId);
    } finally {
      await services.close();
      await services.close();
    }
  });

  it("task status events cross instances on the bus; SDK listeners never see them", async () => {
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        registerRedisBackedServices({
          redisUrl: node.url,
          prefix: "tasks2:",
          requestStates: { keys },
        }),
      ),
    );
    try {
      const onB: TaskStatusEvent[] = [];
      const sdkOnB: unknown[] = [];
      b?.eventBus.subscribeTaskStatus((e) => onB.push(e));
      b?.eventBus.subscribe((e) => sdkOnB.push(e));
      const task = await a?.tasks.create({ principal: "p" });
      await b?.tasks.cancel(task?.taskId as string, { principal: "p" });
      await eventually(async () => expect(onB.map((e) => e.status)).toContain("cancelled"));
      expect(sdkOnB).toEqual([]);
    } finally {
      await Promise.all([a?.close(), b?.close()]);
    }
  });

  it("forceMemorySessionStore: everything in memory, same API", async () => {
    const { logger } = capture();
    const services = await registerRedisBackedServices({
      redisUrl: node.url,
      forceMemorySessionStore: true,
      logger,
      requestStates: { keys },
    });
    try {
      expect(services.sessionStore.backend).toBe("memory");
      const got: string[] = [];
      services.eventBus.subscribe((e) => got.push(e.kind));
      services.eventBus.publish({ kind: "resources_list_changed" });
      expect(got).toEqual(["resources_list_changed"]);
      const h = await services.handles.create(1, { principal: "p" });
      expect(await services.handles.get(h, { principal: "p" })).toBe(1);
    } finally {
      await services.close();
    }
  });

  it("Redis unreachable: memory with a warning; fallback 'error' rejects typed", async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const { lines, logger } = capture();
    const services = await registerRedisBackedServices({
      redisUrl: url,
      connectTimeout: 300,
      logger,
    });
    expect(services.sessionStore.backend).toBe("memory");
    expect(lines.some((l) => l.startsWith("warn") && l.includes("memory"))).toBe(true);
    expect(lines.some((l) => l.includes("requestStates.keys not set"))).toBe(true);
    await services.close();
    await expect(
      registerRedisBackedServices({
        redisUrl: url,
        connectTimeout: 300,
        fallback: "error",
        logger,
      }),
    ).rejects.toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
  });

  it("the seed's (server, options) shape: the services close when the http.Server closes", async () => {
    const http = createServer();
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
    const services = await registerRedisBackedServices(http, {
      redisUrl: node.url,
      forceMemorySessionStore: false,
      requestStates: { keys },
    });
    expect(services.sessionStore.backend).toBe("redis");
    await services.sessionStore.setSession("s1", { ok: true });
    await new Promise<void>((r) => http.close(() => r()));
    await eventually(async () =>
      expect(services.sessionStore.getSession("s1")).rejects.toMatchObject({
        code: "ERR_STORE_CLOSED",
      }),
    );
    // Closed with the server: publishing afterwards is a counted no-op, not a throw.
    expect(() => services.eventBus.publish({ kind: "tools_list_changed" })).not.toThrow();
    await services.close();
  });

  it("a passed-in store stays open after close()", async () => {
    const first = await registerRedisBackedServices({
      redisUrl: node.url,
      requestStates: { keys },
    });
    const second = await registerRedisBackedServices({
      sessionStore: first.sessionStore,
      requestStates: { keys },
    });
    await second.close();
    await first.sessionStore.setSession("still-open", { ok: 1 });
    expect(await first.sessionStore.getSession("still-open")).toEqual({ ok: 1 });
    await first.close();
  });
});
