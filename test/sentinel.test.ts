import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore, type SessionStore } from "../src/index.js";
import { internals } from "../src/types.js";
import { eventually } from "./support/eventually.js";
import { type SentinelHandle, startRedisSentinel } from "./support/redis.js";

describe("Redis Sentinel", () => {
  let sentinel: SentinelHandle;
  let store: SessionStore;
  beforeAll(async () => {
    sentinel = await startRedisSentinel();
    store = await createRedisSessionStore({
      redis: {
        sentinels: sentinel.sentinels.map((s) => ({ host: s.host, port: s.port })),
        name: sentinel.masterName,
      },
      commandTimeout: 1000,
      logger: { info() {}, warn() {}, error() {} },
    });
  });
  afterAll(async () => {
    await store?.disconnect();
    await sentinel?.stop();
  });

  it("serves through the master Sentinel names, in sentinel mode", async () => {
    expect(store.backend).toBe("redis");
    const inner = (store as unknown as Record<symbol, { mode: string }>)[internals];
    expect(inner).toMatchObject({ mode: "sentinel" });
    await store.setSession("s", { v: 1 });
    expect(await store.getSession("s")).toEqual({ v: 1 });
    const health = await store.health();
    expect(health.ok).toBe(true);
  });

  it("follows a failover: the master dies, Sentinel promotes the replica, the store serves again", async () => {
    await store.setSession("before", { v: 1 });
    // Let the replica receive the write before the master goes away.
    await eventually(async () => {
      const { Redis } = await import("ioredis");
      const replica = new Redis(sentinel.replica.url);
      try {
        expect(await replica.hget("mcp:session:{before}", "d")).toBe('{"v":1}');
      } finally {
        replica.disconnect();
      }
    }, 5000);
    await sentinel.master.kill();
    const failing = await store.getSession("before").catch((e: { code?: string }) => e.code);
    expect(["ERR_BACKEND_UNAVAILABLE", { v: 1 }]).toContainEqual(failing);
    await eventually(async () => {
      await store.setSession("after", { v: 2 });
      expect(await store.getSession("before")).toEqual({ v: 1 });
    }, 30_000);
    expect(await store.getSession("after")).toEqual({ v: 2 });
  }, 60_000);
});
