import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createMemorySessionStore,
  createRedisSessionStore,
  type SessionStore,
} from "../src/index.js";
import { CAS_SCRIPT, SET_SCRIPT } from "../src/stores/scripts.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The write paths made cheaper for bench:store: the memory store rewrites a live record in place
 * and the Redis scripts rewrite an existing record with one HSET. What they must still do.
 */
describe("store writes", () => {
  let node: RedisNode;
  let raw: Redis;
  const stores: SessionStore[] = [];
  beforeAll(async () => {
    node = await startRedis();
    raw = new Redis(node.url);
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.disconnect()));
    raw?.disconnect();
    await node?.stop();
  });

  const backends: Array<[string, () => Promise<SessionStore>]> = [
    ["memory", async () => createMemorySessionStore({ instrumentation: false })],
    [
      "redis",
      async () =>
        createRedisSessionStore({
          redisUrl: node.url,
          prefix: `w${Date.now()}:`,
          instrumentation: false,
        }),
    ],
  ];

  for (const [name, make] of backends) {
    describe(name, () => {
      let store: SessionStore;
      beforeAll(async () => {
        store = await make();
        stores.push(store);
      });

      it("an update never loses a set that landed while its fn ran", async () => {
        await store.setSession("race", { n: 1 });
        let calls = 0;
        const result = await store.updateSession<{ n: number }>("race", async (current) => {
          calls++;
          if (calls === 1) await store.setSession("race", { n: 10 });
          return { n: (current?.n ?? 0) + 1 };
        });
        expect(result).toEqual({ n: 11 });
        expect(calls).toBe(2);
        expect(await store.getSession("race")).toEqual({ n: 11 });
      });

      it("an update sees a delete that landed while its fn ran", async () => {
        await store.setSession("gone", { n: 1 });
        const seen: Array<unknown> = [];
        const result = await store.updateSession<{ n: number }>("gone", async (current) => {
          seen.push(current);
          if (seen.length === 1) await store.deleteSession("gone");
          return { n: (current?.n ?? 0) + 1 };
        });
        expect(seen).toEqual([{ n: 1 }, null]);
        expect(result).toEqual({ n: 1 });
      });

      it("a rewrite with a shorter TTL expires at the new time, a longer one outlives the old", async () => {
        await store.setSession("short", { a: 1 }, { ttl: 60 });
        await store.setSession("short", { a: 2 }, { ttl: 0.2 });
        await store.setSession("long", { b: 1 }, { ttl: 0.2 });
        await store.setSession("long", { b: 2 }, { ttl: 60 });
        await sleep(400);
        expect(await store.getSession("short")).toBeNull();
        expect(await store.hasSession("short")).toBe(false);
        expect(await store.getSession("long")).toEqual({ b: 2 });
        expect(await store.getSessionTtl("long")).toBeGreaterThan(50);
      });

      it("gives back a fresh copy on every get, and keeps what was set from later mutation", async () => {
        const value = { list: [1, 2], text: "x".repeat(900) };
        await store.setSession("copy", value);
        value.list.push(3);
        const a = await store.getSession<typeof value>("copy");
        const b = await store.getSession<typeof value>("copy");
        expect(a).toEqual({ list: [1, 2], text: "x".repeat(900) });
        expect(a).not.toBe(b);
        (a as typeof value).list.push(4);
        expect((b as typeof value).list).toEqual([1, 2]);
      });
    });
  }

  describe("Redis scripts", () => {
    const now = 1_700_000_000_000;
    const set = (key: string, data: string, at: number, fence: Array<string | number> = []) =>
      raw.eval(SET_SCRIPT, 2, key, `${key}:gone`, data, 60_000, at, ...fence);

    it("SET rewrites data, version and updatedAt, keeps createdAt, and sets the expiry", async () => {
      const key = "s:{one}";
      expect(await set(key, '"a"', now)).toBe(1);
      expect(await set(key, '"b"', now + 5)).toBe(2);
      expect(await raw.hgetall(key)).toEqual({
        d: '"b"',
        v: "2",
        c: String(now),
        u: String(now + 5),
      });
      expect(await raw.pttl(key)).toBeGreaterThan(55_000);
    });

    it("SET continues the version of a record written with HINCRBY (records of earlier releases)", async () => {
      const key = "s:{old}";
      await raw.hset(key, "d", '"old"', "c", String(now), "u", String(now));
      await raw.hincrby(key, "v", 7);
      expect(await set(key, '"new"', now + 1, ["W", 1, 0])).toBe(8);
      expect(await raw.hget(key, "v")).toBe("8");
    });

    it("a fenced SET writes the floor field only when it raises it, and keeps other writers' fields", async () => {
      const key = "s:{floor}";
      expect(await set(key, '"1"', now, ["A", 1, 0])).toBe(1);
      expect(await raw.hkeys(key)).toEqual(expect.not.arrayContaining(["z:A"]));
      expect(await set(key, '"2"', now, ["B", 3, 3])).toBe(2);
      expect(await set(key, '"3"', now, ["A", 4, 0])).toBe(3);
      expect(await raw.hget(key, "z:B")).toBe("3");
      expect(await set(key, '"4"', now, ["B", 2, 0])).toBe(-2);
      expect(await set(key, '"5"', now, ["B", 5, 3])).toBe(4);
      expect(await raw.hget(key, "z:B")).toBe("3");
      expect(await set(key, '"6"', now, ["B", 6, 6])).toBe(5);
      expect(await raw.hget(key, "z:B")).toBe("6");
      expect(await raw.hget(key, "d")).toBe('"6"');
    });

    it("CAS compares version and createdAt, and creates an absent record with createdAt", async () => {
      const key = "s:{cas}";
      const cas = (v: string, c: string, data: string, at: number) =>
        raw.eval(CAS_SCRIPT, 2, key, `${key}:gone`, v, c, data, 60_000, at, "W", at, 0);
      expect(await cas("", "", '"a"', now)).toBe(1);
      expect(await raw.hget(key, "c")).toBe(String(now));
      expect(await cas("1", String(now + 1), '"x"', now + 2)).toBe(-1);
      expect(await cas("2", String(now), '"x"', now + 2)).toBe(-1);
      expect(await cas("1", String(now), '"b"', now + 3)).toBe(2);
      expect(await raw.hgetall(key)).toEqual({
        d: '"b"',
        v: "2",
        c: String(now),
        u: String(now + 3),
      });
      expect(await raw.pttl(key)).toBeGreaterThan(55_000);
    });
  });
});
