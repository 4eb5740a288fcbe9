import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore, type SessionStore } from "../src/index.js";
import { eventually } from "./support/eventually.js";
import { type RedisClusterHandle, startRedisCluster } from "./support/redis.js";

describe("Redis Cluster failover", () => {
  let cluster: RedisClusterHandle;
  let store: SessionStore;
  beforeAll(async () => {
    cluster = await startRedisCluster();
    store = await createRedisSessionStore({
      redis: { clusterNodes: cluster.seeds },
      commandTimeout: 1000,
      instrumentation: false,
      logger: { info() {}, warn() {}, error() {} },
    });
  });
  afterAll(async () => {
    await store?.disconnect();
    await cluster?.stop();
  });

  it("fails fast while a master is down, then serves its slots from the promoted replica", async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `s-${i}`);
    for (const id of ids) await store.setSession(id, { id });
    // The master that owns slot of "s-0"'s record.
    const admin = new Redis(cluster.nodes[0]?.port as number, "127.0.0.1");
    let ownerPort = 0;
    try {
      const slot = Number(await admin.call("CLUSTER", "KEYSLOT", "mcp:session:{s-0}"));
      const slots = (await admin.call("CLUSTER", "SLOTS")) as Array<
        [number, number, [string, number]]
      >;
      for (const [from, to, [, port]] of slots) if (slot >= from && slot <= to) ownerPort = port;
    } finally {
      admin.disconnect();
    }
    const owner = cluster.nodes.find((n) => n.port === ownerPort);
    expect(owner).toBeDefined();
    // Replication is asynchronous: a failover loses what the replica had not received (a property
    // of Redis, not of this library). Wait until the owner's replica acknowledged every write.
    const ownerClient = new Redis(ownerPort, "127.0.0.1");
    try {
      await eventually(async () => {
        expect(Number(await ownerClient.call("WAIT", "1", "1000"))).toBe(1);
      }, 20_000);
    } finally {
      ownerClient.disconnect();
    }
    await owner?.kill();
    const start = performance.now();
    const during = await store.getSession("s-0").catch((e: { code?: string }) => e.code);
    expect(performance.now() - start).toBeLessThan(1000 + 1500);
    expect(["ERR_BACKEND_UNAVAILABLE", { id: "s-0" }]).toContainEqual(during);
    await eventually(async () => {
      expect(await store.getSession("s-0")).toEqual({ id: "s-0" });
    }, 30_000);
    for (const id of ids) expect(await store.getSession(id)).toEqual({ id });
    await owner?.restart();
  }, 60_000);
});
