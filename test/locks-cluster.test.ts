import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore, type SessionStore } from "../src/index.js";
import { type RedisClusterHandle, startRedisCluster } from "./support/redis.js";

describe("locks on a Redis Cluster (data node as the lock node)", () => {
  let cluster: RedisClusterHandle;
  const stores: SessionStore[] = [];
  beforeAll(async () => {
    cluster = await startRedisCluster();
    for (let i = 0; i < 2; i++) {
      stores.push(
        await createRedisSessionStore({
          redis: { clusterNodes: cluster.seeds },
          prefix: "clusterlock:",
          instrumentation: false,
        }),
      );
    }
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.disconnect()));
    await cluster?.stop();
  });

  it("excludes mutually across 2 stores with increasing fencing tokens, on ids in many slots", async () => {
    const ids = ["a", "b{x}", "c}", "session-42"];
    for (const id of ids) {
      let value = 0;
      const tokens: number[] = [];
      await Promise.all(
        Array.from({ length: 6 }, (_, w) =>
          (async () => {
            for (let k = 0; k < 25; k++) {
              await (stores[w % 2] as SessionStore).withLock(
                id,
                async (lock) => {
                  const read = value;
                  await new Promise((resolve) => setImmediate(resolve));
                  value = read + 1;
                  tokens.push(lock.fencingToken);
                },
                { waitTimeout: 20_000 },
              );
            }
          })(),
        ),
      );
      expect(value).toBe(150);
      for (let i = 1; i < tokens.length; i++) {
        expect(tokens[i]).toBeGreaterThan(tokens[i - 1] as number);
      }
    }
  });

  it("reports a held lock as ERR_LOCK_TIMEOUT and wakes a waiter on release", async () => {
    const [a, b] = stores as [SessionStore, SessionStore];
    const held = await a.acquireLock("wake", { ttl: 10_000 });
    await expect(b.acquireLock("wake", { waitTimeout: 0 })).rejects.toMatchObject({
      code: "ERR_LOCK_TIMEOUT",
    });
    const waiting = b.acquireLock("wake", { waitTimeout: 8_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await held.release();
    const next = await waiting;
    expect(next.fencingToken).toBeGreaterThan(held.fencingToken);
    await next.release();
  });
});
