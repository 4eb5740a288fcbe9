import type { Redis } from "ioredis";
import { Redis as Redis5 } from "ioredis5";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore } from "../src/index.js";
import { type RedisNode, startRedis } from "./support/redis.js";

// The library runs on ioredis 6; a client that a user built with ioredis 5 still works when it is
// passed through the `redis` option (the store only uses commands both majors share).
describe("a user-supplied ioredis 5 client", () => {
  let node: RedisNode;
  let client: Redis5;

  beforeAll(async () => {
    node = await startRedis();
    client = new Redis5(node.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await node?.stop();
  });

  it("serves sessions, atomic updates and locks, and is left open on disconnect", async () => {
    // The `redis` option is typed with this package's ioredis 6; a 5.x client needs a cast.
    const store = await createRedisSessionStore({
      redis: client as unknown as Redis,
      instrumentation: false,
    });
    expect(store.backend).toBe("redis");
    await store.setSession("s1", { n: 1 }, { ttl: 60 });
    expect(await store.getSession("s1")).toEqual({ n: 1 });
    await Promise.all(
      Array.from({ length: 10 }, () =>
        store.updateSession<{ n: number }>("s1", (current) => ({ n: (current?.n ?? 0) + 1 })),
      ),
    );
    expect(await store.getSession("s1")).toEqual({ n: 11 });
    const first = await store.acquireLock("s1", { ttl: 5_000 });
    await first.release();
    const second = await store.acquireLock("s1", { ttl: 5_000 });
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
    await second.release();
    const ids: string[] = [];
    for await (const id of store.listSessions()) ids.push(id);
    expect(ids).toEqual(["s1"]);
    // The records are on the server of the client passed in, not on a client of the store's own.
    expect((await client.keys("*")).sort()).toEqual(["mcp:session:{s1}", "mcp:session:{s1}:fence"]);
    await store.disconnect();
    // The client belongs to the caller: the store does not close it.
    expect(await client.ping()).toBe("PONG");
  });
});
