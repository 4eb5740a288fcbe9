import type { ServerEventBus } from "@modelcontextprotocol/server";
import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMemorySessionStore, createRedisSessionStore } from "../src/factory.js";
import { type ChangeEvent, createEventBus, type TaskStatusEvent } from "../src/mcp/event-bus.js";
import { redisAccessOf } from "../src/mcp/support.js";
import { type Instance, startInstance } from "./fixtures/v2-instances.js";
import { eventually } from "./support/eventually.js";
import {
  type RedisClusterHandle,
  type RedisNode,
  startRedis,
  startRedisCluster,
} from "./support/redis.js";

const silent = { info() {}, warn() {}, error() {} };

type MetricJson = {
  name: string;
  values: Array<{ value: number; labels: Record<string, string> }>;
};

function metric(metrics: MetricJson[], name: string, labels: Record<string, string> = {}): number {
  const found = metrics.find((m) => m.name === name);
  return (found?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i);
}

describe("event bus in one process", () => {
  it("is a ServerEventBus: listeners once, throwing listener isolated, bad input typed, task events apart", async () => {
    const registry = new Registry();
    const errors: Error[] = [];
    const bus = await createEventBus({
      redis: undefined,
      registry,
      logger: silent,
      onerror: (e) => errors.push(e),
    });
    const sdkView: ServerEventBus = bus;
    const got: string[] = [];
    const tasks: TaskStatusEvent[] = [];
    const off = sdkView.subscribe((e) => got.push(e.kind));
    sdkView.subscribe(() => {
      throw new Error("listener bug");
    });
    bus.subscribeTaskStatus((e) => tasks.push(e));
    sdkView.publish({ kind: "resource_updated", uri: "file:///a" });
    bus.publish({ kind: "task_status", taskId: "t1", status: "working" });
    expect(got).toEqual(["resource_updated"]);
    expect(tasks).toEqual([{ kind: "task_status", taskId: "t1", status: "working" }]);
    expect(errors.map((e) => e.message)).toEqual(["listener bug"]);
    expect(() => bus.publish({ kind: "nope" } as unknown as ChangeEvent)).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }),
    );
    expect(() => bus.publish({ kind: "resource_updated" } as unknown as ChangeEvent)).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }),
    );
    off();
    off();
    bus.publish({ kind: "tools_list_changed" });
    expect(got).toEqual(["resource_updated"]);
    const json = (await registry.getMetricsAsJSON()) as MetricJson[];
    expect(metric(json, "mcp_session_store_bus_dropped_total", { reason: "listener_error" })).toBe(
      2,
    );
    await bus.close();
    expect(() => bus.publish({ kind: "tools_list_changed" })).not.toThrow();
  });

  it("on one Redis, two buses in one process: each listener once, own echo skipped", async () => {
    const node = await startRedis();
    const stores = await Promise.all(
      ["a", "b"].map(() =>
        createRedisSessionStore({ redisUrl: node.url, prefix: "one:", instrumentation: false }),
      ),
    );
    try {
      const buses = await Promise.all(
        stores.map((s) =>
          createEventBus({ redis: redisAccessOf(s), registry: new Registry(), logger: silent }),
        ),
      );
      const got: string[][] = [[], []];
      for (const [i, bus] of buses.entries())
        bus.subscribe((e) => got[i]?.push(String(e.params?.from)));
      buses[0]?.publish({ kind: "tools_list_changed", params: { from: "a" } });
      buses[1]?.publish({ kind: "tools_list_changed", params: { from: "b" } });
      await eventually(async () => {
        expect(got[0]?.sort()).toEqual(["a", "b"]);
        expect(got[1]?.sort()).toEqual(["a", "b"]);
      });
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toEqual([
        ["a", "b"],
        ["a", "b"],
      ]);
      await Promise.all(buses.map((b) => b.close()));
    } finally {
      await Promise.all(stores.map((s) => s.disconnect()));
      await node.stop();
    }
  });

  it("an event published from inside a listener is not echoed back to that listener", async () => {
    const bus = await createEventBus({
      redis: undefined,
      registry: new Registry(),
      logger: silent,
    });
    const seen: string[] = [];
    bus.subscribe((e) => {
      seen.push(`relay:${e.kind}`);
      if (e.kind === "tools_list_changed") bus.publish({ kind: "prompts_list_changed" });
    });
    bus.subscribe((e) => seen.push(`other:${e.kind}`));
    bus.publish({ kind: "tools_list_changed" });
    expect(seen).toEqual([
      "relay:tools_list_changed",
      "other:prompts_list_changed",
      "other:tools_list_changed",
    ]);
    await bus.close();
  });

  it("the memory store gives an in-process bus", async () => {
    const store = createMemorySessionStore({ instrumentation: false });
    expect(redisAccessOf(store)).toBeUndefined();
    const bus = await createEventBus({
      redis: redisAccessOf(store),
      registry: new Registry(),
      logger: silent,
    });
    const got: string[] = [];
    bus.subscribe((e) => got.push(e.kind));
    bus.publish({ kind: "prompts_list_changed" });
    expect(got).toEqual(["prompts_list_changed"]);
    await bus.close();
    await store.disconnect();
  });
});

describe("event bus across two processes on one Redis", () => {
  let node: RedisNode;
  let a: Instance;
  let b: Instance;
  let prefix = "";
  let round = 0;

  beforeAll(async () => {
    node = await startRedis();
  });
  afterAll(async () => {
    await node?.stop();
  });
  afterEach(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  async function both(): Promise<void> {
    prefix = `bus${round++}:`;
    [a, b] = await Promise.all([startInstance(node.url, prefix), startInstance(node.url, prefix)]);
  }

  it("2 processes x 3 subscribers: every event exactly once to each, the publisher's own once", async () => {
    await both();
    await Promise.all([
      a.call({ op: "publish", from: 0, count: 100 }),
      b.call({ op: "publish", from: 1000, count: 100 }),
    ]);
    const expected = [...range(0, 100), ...range(1000, 100)];
    for (const instance of [a, b]) {
      await eventually(async () => {
        const lists = await instance.call<number[][]>({ op: "received" });
        expect(lists).toHaveLength(3);
        for (const list of lists) expect(list.length).toBeGreaterThanOrEqual(200);
      });
    }
    // Let stragglers (a duplicate, were there one) arrive before the exact check.
    await new Promise((r) => setTimeout(r, 200));
    for (const instance of [a, b]) {
      const lists = await instance.call<number[][]>({ op: "received" });
      for (const list of lists) expect([...list].sort((x, y) => x - y)).toEqual(expected);
    }
  });

  it("10,000 events with no loss while Redis is up, in publish order", async () => {
    await both();
    await a.call({ op: "publish", from: 0, count: 10_000 });
    await eventually(async () => {
      const lists = await b.call<number[][]>({ op: "received" });
      for (const list of lists) expect(list.length).toBe(10_000);
    }, 30_000);
    const lists = await b.call<number[][]>({ op: "received" });
    for (const list of lists) expect(list).toEqual(range(0, 10_000));
    const metrics = await b.call<MetricJson[]>({ op: "metrics" });
    expect(metric(metrics, "mcp_session_store_bus_lost_total")).toBe(0);
    expect(metric(metrics, "mcp_session_store_bus_delivered_total")).toBe(30_000);
  });

  it("drops and counts malformed channel messages, never handing them to a listener", async () => {
    await both();
    const raw = new Redis(node.url);
    try {
      const channel = `${prefix}bus`;
      const envelope = (e: unknown, s: unknown = 1) =>
        JSON.stringify({ i: "intruder", s, t: Date.now(), e });
      const bad = [
        "not json",
        "[]",
        JSON.stringify({ i: "x", s: 1, t: 1 }),
        envelope({ kind: "tools_list_changed" }, 0),
        envelope({ kind: "tools_list_changed" }, "1"),
        envelope({ kind: "unknown_kind" }),
        envelope({ kind: "resource_updated" }),
        envelope({ kind: "tools_list_changed", params: "x" }),
        envelope({ kind: "task_status", taskId: "", status: "working" }),
        "x".repeat((1 << 20) + 1),
      ];
      for (const message of bad) await raw.publish(channel, message);
      await a.call({ op: "publish", from: 7, count: 1 });
      await eventually(async () => {
        const lists = await b.call<number[][]>({ op: "received" });
        for (const list of lists) expect(list).toEqual([7]);
      });
      const metrics = await b.call<MetricJson[]>({ op: "metrics" });
      expect(metric(metrics, "mcp_session_store_bus_dropped_total", { reason: "malformed" })).toBe(
        bad.length,
      );
    } finally {
      raw.disconnect();
    }
  });

  it("Redis killed and restarted: no crash, delivery resumes, every lost event counted", async () => {
    await both();
    await a.call({ op: "publish", from: 0, count: 50 });
    await eventually(async () => {
      const lists = await b.call<number[][]>({ op: "received" });
      expect(lists[0]).toHaveLength(50);
    });
    await node.kill();
    // Published into the outage: lost for B, never thrown at A.
    await a.call({ op: "publish", from: 50, count: 50 });
    await node.restart();
    let next = 100;
    await eventually(
      async () => {
        await a.call({ op: "publish", from: next++, count: 1 });
        await new Promise((r) => setTimeout(r, 50));
        const lists = await b.call<number[][]>({ op: "received" });
        expect(lists[0]?.at(-1) ?? 0).toBeGreaterThanOrEqual(100);
      },
      20_000,
      200,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(a.child.exitCode).toBeNull();
    expect(b.child.exitCode).toBeNull();
    const lists = await b.call<number[][]>({ op: "received" });
    const published = next;
    const metricsB = await b.call<MetricJson[]>({ op: "metrics" });
    const metricsA = await a.call<MetricJson[]>({ op: "metrics" });
    // Every event A published is either delivered to B or counted lost by B, none twice.
    for (const list of lists) {
      expect(new Set(list).size).toBe(list.length);
      expect(list.length + metric(metricsB, "mcp_session_store_bus_lost_total")).toBe(published);
    }
    expect(metric(metricsB, "mcp_session_store_bus_lost_total")).toBeGreaterThanOrEqual(50);
    expect(
      metric(metricsA, "mcp_session_store_bus_dropped_total", { reason: "publish_failed" }),
    ).toBeGreaterThanOrEqual(50);
    // A's own listeners got everything, outage or not.
    for (const list of await a.call<number[][]>({ op: "received" }))
      expect(list).toEqual(range(0, published));
  }, 60_000);
});

describe("event bus on a Redis Cluster: sharded pub/sub", () => {
  let cluster: RedisClusterHandle;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("SSUBSCRIBE on the channel's shard only; each listener once on both clients", async () => {
    const stores = await Promise.all(
      [0, 1].map(() =>
        createRedisSessionStore({
          redis: { clusterNodes: cluster.seeds },
          prefix: "shard:",
          instrumentation: false,
        }),
      ),
    );
    try {
      const buses = await Promise.all(
        stores.map((s) =>
          createEventBus({ redis: redisAccessOf(s), registry: new Registry(), logger: silent }),
        ),
      );
      const got: number[][] = [[], []];
      for (const [i, bus] of buses.entries())
        bus.subscribe((e) => got[i]?.push(Number(e.params?.n)));
      for (let n = 0; n < 20; n++)
        buses[n % 2]?.publish({ kind: "tools_list_changed", params: { n } });
      await eventually(async () => {
        for (const list of got) expect(list).toHaveLength(20);
      });
      await new Promise((r) => setTimeout(r, 200));
      for (const list of got) expect([...list].sort((x, y) => x - y)).toEqual(range(0, 20));
      // The channel is a shard channel on exactly one node, and no classic channel anywhere.
      const answers = await Promise.all(
        cluster.nodes.map(async (n) => {
          const raw = new Redis(n.url);
          try {
            const shard = (await raw.call("PUBSUB", "SHARDCHANNELS")) as string[];
            const classic = (await raw.call("PUBSUB", "CHANNELS")) as string[];
            return { shard, classic };
          } finally {
            raw.disconnect();
          }
        }),
      );
      expect(answers.filter((a) => a.shard.includes("shard:bus"))).toHaveLength(1);
      expect(answers.flatMap((a) => a.classic)).toEqual([]);
      await Promise.all(buses.map((b) => b.close()));
    } finally {
      await Promise.all(stores.map((s) => s.disconnect()));
    }
  }, 60_000);
});
