import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTaskStore, type TaskStore } from "../src/mcp/tasks.js";
import {
  createPeer,
  memoryBus,
  type PeerConfig,
  type PeerError,
  type PeerOps,
  redisAccess,
  spawnPeer,
} from "./fixtures/v2-tasks-harness.js";
import { eventually } from "./support/eventually.js";
import {
  type RedisClusterHandle,
  type RedisNode,
  startRedis,
  startRedisCluster,
} from "./support/redis.js";

const KEY = "key-0123456789abcdef0123456789abcdef";

interface Instances {
  a: PeerOps;
  b: PeerOps;
  close(): Promise<void>;
}

async function errorOf(attempt: Promise<unknown>): Promise<PeerError> {
  const err = (await attempt.then(
    () => undefined,
    (e: unknown) => e,
  )) as PeerError | undefined;
  expect(err, "the call succeeded").toBeDefined();
  return err as PeerError;
}

async function expectUnknown(attempt: Promise<unknown>): Promise<void> {
  const err = await errorOf(attempt);
  expect(err.code).toBe("ERR_INVALID_ARGUMENT");
  expect(err.details).toEqual({ reason: "task_not_found" });
  expect(err.message).toBe("Unknown task");
}

function taskSuite(name: string, setup: () => Promise<Instances>) {
  describe(name, () => {
    let env: Instances;
    beforeAll(async () => {
      env = await setup();
    });
    afterAll(async () => {
      await env?.close();
    });

    it("a task created on A is readable on B at once, with the spec's wire fields", async () => {
      const task = await env.a.create("alice");
      expect(task.taskId).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(Buffer.from(task.taskId, "base64url")).toHaveLength(16);
      expect(task).toMatchObject({ status: "working", ttlMs: 60_000, pollIntervalMs: 200 });
      expect(task).not.toHaveProperty("ttl");
      expect(task).not.toHaveProperty("pollInterval");
      expect(Date.parse(task.createdAt)).not.toBeNaN();
      const seen = await env.b.get(task.taskId, "alice");
      expect(seen).toEqual(task);
    });

    it("another principal's task looks exactly like an unknown one", async () => {
      const task = await env.a.create("alice");
      await expectUnknown(env.b.get(task.taskId, "mallory"));
      await expectUnknown(env.b.update(task.taskId, { x: {} }, "mallory"));
      await expectUnknown(env.b.cancel(task.taskId, "mallory"));
      await expectUnknown(env.b.get("AAAAAAAAAAAAAAAAAAAAAA", "alice"));
      await expectUnknown(env.b.get("not a task id", "alice"));
      expect((await env.a.get(task.taskId, "alice")).status).toBe("working");
    });

    it("a cancel on B reaches the worker on A; cancel is then idempotent", async () => {
      const task = await env.a.create("alice");
      await env.a.work(task.taskId, "alice", "wait");
      await eventually(async () =>
        expect(await env.a.worker(task.taskId)).toEqual({ aborted: false, done: false }),
      );
      await env.b.cancel(task.taskId, "alice");
      await eventually(async () =>
        expect(await env.a.worker(task.taskId)).toEqual({ aborted: true, done: true }),
      );
      expect((await env.a.get(task.taskId, "alice")).status).toBe("cancelled");
      await env.b.cancel(task.taskId, "alice");
      await env.a.cancel(task.taskId, "alice");
      expect((await env.b.get(task.taskId, "alice")).status).toBe("cancelled");
    });

    it("input requests are answered through tasks/update on B, one at a time, then the worker on A completes", async () => {
      const task = await env.a.create("alice");
      await env.a.work(task.taskId, "alice", "input");
      const parked = await eventually(async () => {
        const t = await env.b.get(task.taskId, "alice");
        expect(t.status).toBe("input_required");
        return t;
      });
      expect(Object.keys(parked.inputRequests ?? {}).sort()).toEqual(["first", "second"]);
      expect(parked.inputRequests?.first).toMatchObject({ method: "elicitation/create" });

      await env.b.update(
        task.taskId,
        { first: { action: "accept", content: { n: 1 } }, bogus: {} },
        "alice",
      );
      const partial = await env.b.get(task.taskId, "alice");
      expect(partial.status).toBe("input_required");
      expect(Object.keys(partial.inputRequests ?? {})).toEqual(["second"]);

      await env.b.update(task.taskId, { second: { action: "decline" } }, "alice");
      const done = await eventually(async () => {
        const t = await env.b.get(task.taskId, "alice");
        expect(t.status).toBe("completed");
        return t;
      });
      expect(done).not.toHaveProperty("inputRequests");
      expect(done).not.toHaveProperty("error");
      const text = (done.result?.content as Array<{ text: string }> | undefined)?.[0]?.text ?? "";
      expect(JSON.parse(text)).toEqual({
        first: { action: "accept", content: { n: 1 } },
        second: { action: "decline" },
      });
      // A terminal task ignores further answers and stays completed.
      await env.b.update(task.taskId, { second: {} }, "alice");
      expect((await env.a.get(task.taskId, "alice")).status).toBe("completed");
    });

    it("a worker waiting for input on A stops when B cancels the task", async () => {
      const task = await env.a.create("alice");
      await env.a.work(task.taskId, "alice", "input");
      await eventually(async () =>
        expect((await env.b.get(task.taskId, "alice")).status).toBe("input_required"),
      );
      await env.b.cancel(task.taskId, "alice");
      await eventually(async () =>
        expect(await env.a.worker(task.taskId)).toEqual({ aborted: true, done: true }),
      );
      const cancelled = await env.b.get(task.taskId, "alice");
      expect(cancelled.status).toBe("cancelled");
      expect(cancelled).not.toHaveProperty("inputRequests");
      expect(cancelled).not.toHaveProperty("result");
    });

    it("a worker that throws fails the task with an inlined JSON-RPC error and no result", async () => {
      const task = await env.a.create("alice");
      await env.a.work(task.taskId, "alice", "throw");
      const failed = await eventually(async () => {
        const t = await env.b.get(task.taskId, "alice");
        expect(t.status).toBe("failed");
        return t;
      });
      expect(failed.error).toEqual({ code: -32603, message: "worker exploded" });
      expect(failed).not.toHaveProperty("result");
    });

    it("an expired task answers as unknown (-32602 through the handlers)", async () => {
      const task = await env.a.create("alice", { ttlMs: 300 });
      expect((await env.b.get(task.taskId, "alice")).ttlMs).toBe(300);
      await new Promise((resolve) => setTimeout(resolve, 450));
      await expectUnknown(env.b.get(task.taskId, "alice"));
      const err = await errorOf(env.b.handle("tasks/get", { taskId: task.taskId }, "alice"));
      expect(err.code).toBe(-32602);
    });

    it("status changes on A reach a bus subscriber on B", async () => {
      const task = await env.a.create("alice");
      await env.a.work(task.taskId, "alice", "wait");
      await env.a.cancel(task.taskId, "alice");
      await eventually(async () => {
        const events = (await env.b.events()).filter((e) => e.taskId === task.taskId);
        expect(events).toContainEqual({
          kind: "task_status",
          taskId: task.taskId,
          status: "cancelled",
        });
      });
    });

    it("the handlers answer the spec's results and errors", async () => {
      const task = await env.a.create("alice");
      const got = (await env.b.handle("tasks/get", { taskId: task.taskId }, "alice")) as Record<
        string,
        unknown
      >;
      expect(got).toMatchObject({ resultType: "complete", taskId: task.taskId, status: "working" });
      expect(got).not.toHaveProperty("requestState");
      expect(
        await env.b.handle("tasks/update", { taskId: task.taskId, inputResponses: {} }, "alice"),
      ).toEqual({
        resultType: "complete",
      });
      expect(await env.b.handle("tasks/cancel", { taskId: task.taskId }, "alice")).toEqual({
        resultType: "complete",
      });
      expect(await env.b.handle("tasks/cancel", { taskId: task.taskId }, "alice")).toEqual({
        resultType: "complete",
      });
      for (const [method, params] of [
        ["tasks/get", { taskId: "tasks-conformance-nonexistent-12345" }],
        ["tasks/cancel", { taskId: task.taskId }],
        ["tasks/update", { taskId: task.taskId, inputResponses: {} }],
        ["tasks/get", {}],
        ["tasks/update", { taskId: task.taskId, inputResponses: [] }],
      ] as const) {
        const principal = method === "tasks/get" ? "alice" : "mallory";
        const err = await errorOf(env.b.handle(method, params, principal));
        expect(err.code, `${method} ${JSON.stringify(params)}`).toBe(-32602);
      }
    });

    it("counts transitions by status, with no task id in a label", async () => {
      const task = await env.a.create("alice");
      await env.a.cancel(task.taskId, "alice");
      const text = await env.a.metrics();
      expect(text).toMatch(/mcp_session_store_task_transitions_total\{status="working"\} [1-9]/);
      expect(text).toMatch(/mcp_session_store_task_transitions_total\{status="cancelled"\} [1-9]/);
      expect(text).not.toContain(task.taskId);
    });
  });
}

const base = (overrides: Partial<PeerConfig> = {}): PeerConfig => ({
  prefix: "t:",
  keys: { current: KEY },
  defaultTtl: 60,
  pollIntervalMs: 200,
  ...overrides,
});

taskSuite("tasks in memory (one process)", async () => {
  const a = await createPeer(base());
  return { a, b: a, close: () => a.close() };
});

describe("tasks on Redis", () => {
  let redis: RedisNode;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("without a bus, a worker parked on input learns of another instance's cancel by polling", async () => {
    const connections = [redisAccess(redis.url), redisAccess(redis.url)];
    const [one, two] = connections.map(({ access }) =>
      createTaskStore({
        redis: access,
        prefix: "nobus:",
        registry: new Registry(),
        logger: console,
        pollIntervalMs: 50,
      }),
    ) as [TaskStore, TaskStore];
    const caller = { principal: "p" };
    const task = await one.create(caller);
    let outcome: unknown;
    const running = one.run(task.taskId, caller, async ({ requestInput }) => {
      outcome = await requestInput({ q: { method: "elicitation/create", params: {} } }).catch(
        (err: { code?: string }) => err.code,
      );
      return {};
    });
    await eventually(async () =>
      expect((await two.get(task.taskId, caller)).status).toBe("input_required"),
    );
    await two.cancel(task.taskId, caller);
    await running;
    expect(outcome).toBe("ERR_ABORTED");
    expect((await one.get(task.taskId, caller)).status).toBe("cancelled");
    await Promise.all([one.close(), two.close()]);
    for (const connection of connections) connection.close();
  });

  taskSuite("two processes A and B on one Redis, with a Redis pub/sub bus", async () => {
    const config = base({ redisUrl: redis.url });
    const [a, b] = (await Promise.all([spawnPeer(config), spawnPeer(config)])) as [
      PeerOps,
      PeerOps,
    ];
    return {
      a,
      b,
      close: async () => {
        await Promise.all([a.close(), b.close()]);
      },
    };
  });
});

describe("tasks on Redis Cluster", () => {
  let cluster: RedisClusterHandle;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  taskSuite("two instances on one Cluster (one process, one bus)", async () => {
    const bus = memoryBus();
    const config = base({ cluster: cluster.seeds });
    const [a, b] = [await createPeer(config, { bus }), await createPeer(config, { bus })];
    return {
      a,
      b,
      close: async () => {
        await Promise.all([a.close(), b.close()]);
      },
    };
  });
});

describe("tasks: options and closing", () => {
  const options = () => ({
    redis: undefined,
    prefix: "t:",
    registry: new Registry(),
    logger: console,
  });

  it("refuses bad options, naming the field", () => {
    expect(() => createTaskStore({ ...options(), defaultTtl: 0 })).toThrow(/defaultTtl/);
    expect(() => createTaskStore({ ...options(), pollIntervalMs: 1.5 })).toThrow(/pollIntervalMs/);
  });

  it("a worker is not started for a task that has already ended", async () => {
    const tasks = createTaskStore(options());
    const task = await tasks.create({ principal: "p" });
    await tasks.cancel(task.taskId, { principal: "p" });
    let ran = false;
    await tasks.run(task.taskId, { principal: "p" }, async () => {
      ran = true;
      return {};
    });
    expect(ran).toBe(false);
    await tasks.close();
  });

  it("close aborts local workers and refuses further calls", async () => {
    const tasks = createTaskStore(options());
    const task = await tasks.create({ principal: "p" });
    let started = false;
    let aborted = false;
    const running = tasks.run(task.taskId, { principal: "p" }, async ({ signal }) => {
      started = true;
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
      aborted = true;
      return {};
    });
    await eventually(async () => expect(started).toBe(true));
    await tasks.close();
    await running;
    expect(aborted).toBe(true);
    await expect(tasks.get(task.taskId, { principal: "p" })).rejects.toMatchObject({
      code: "ERR_STORE_CLOSED",
    });
  });
});
