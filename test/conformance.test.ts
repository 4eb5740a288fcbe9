import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore } from "../src/index.js";
import { storeConformanceSuite as conformance } from "./suites/store-conformance.js";
import {
  type RedisClusterHandle,
  type RedisNode,
  startRedis,
  startRedisCluster,
} from "./support/redis.js";

// The memory backend runs the same suite in conformance-memory.test.ts (the unit project).

describe("redis standalone", () => {
  let node: RedisNode;
  beforeAll(async () => {
    node = await startRedis();
  });
  afterAll(async () => {
    await node?.stop();
  });
  conformance(() => ({
    name: "redis",
    shared: true,
    make: (options) => createRedisSessionStore({ redisUrl: node.url, ...options }),
  }));

  it("keeps every key of a session in one hash-tagged layout, with an expiry", async () => {
    const s = await createRedisSessionStore({
      redisUrl: node.url,
      prefix: "layout:",
      instrumentation: false,
    });
    const raw = new Redis(node.url);
    try {
      await s.setSession("a}b", { x: 1 }, { ttl: 30 });
      const keys = await raw.keys("layout:*");
      expect(keys).toEqual(["layout:{a%7Db}"]);
      const pttl = await raw.pttl("layout:{a%7Db}");
      expect(pttl).toBeGreaterThan(29_000);
      const record = await raw.hgetall("layout:{a%7Db}");
      expect(JSON.parse(record.d as string)).toEqual({ x: 1 });
      expect(Number(record.v)).toBe(1);
      expect(Number(record.c)).toBeGreaterThan(0);
    } finally {
      raw.disconnect();
      await s.disconnect();
    }
  });
});

describe("redis cluster", () => {
  let cluster: RedisClusterHandle;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  conformance(() => ({
    name: "redis-cluster",
    shared: true,
    make: (options) =>
      createRedisSessionStore({ redis: { clusterNodes: cluster.seeds }, ...options }),
  }));
});
