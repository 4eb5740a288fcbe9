import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { SessionStore, SessionStoreOptions } from "../../src/index.js";

/**
 * The store conformance suite: the cases every `SessionStore` backend must pass, with the same
 * results. A new backend imports it and calls it inside a `describe`, as keyv's storage adapters
 * do with keyv's test suite:
 *
 * @example
 * describe("my backend", () => {
 *   storeConformanceSuite(() => ({ name: "mine", shared: true, make: (o) => createMyStore(o) }));
 * });
 */
export interface Backend {
  name: string;
  /** A new store on the same data (two calls = two instances sharing state, for Redis). */
  make(options?: SessionStoreOptions): Promise<SessionStore>;
  /** Whether two `make` calls share data. */
  shared: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The one conformance suite: the same cases for every backend. */
export function storeConformanceSuite(backend: () => Backend): void {
  let b: Backend;
  const stores: SessionStore[] = [];
  let store: SessionStore;
  let n = 0;
  const unique = () => `p${process.pid}-${Date.now()}-${n++}:`;
  const make = async (options?: SessionStoreOptions) => {
    const s = await b.make({ instrumentation: false, ...options });
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    b = backend();
    store = await make({ prefix: unique() });
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.disconnect()));
  });

  it("gets what was set, and null for an absent session", async () => {
    await store.setSession("s1", {
      toolName: "my-tool",
      result: "success",
      n: [1, 2, { x: null }],
    });
    expect(await store.getSession("s1")).toEqual({
      toolName: "my-tool",
      result: "success",
      n: [1, 2, { x: null }],
    });
    expect(await store.getSession("absent")).toBeNull();
    await store.setSession("s1", "replaced");
    expect(await store.getSession("s1")).toBe("replaced");
    for (const value of [0, false, "", null, [], {}]) {
      await store.setSession("falsy", value);
      expect(await store.getSession("falsy")).toEqual(value);
      expect(await store.hasSession("falsy")).toBe(true);
    }
  });

  it("deletes, and says whether the session existed", async () => {
    await store.setSession("d1", 1);
    expect(await store.deleteSession("d1")).toBe(true);
    expect(await store.deleteSession("d1")).toBe(false);
    expect(await store.hasSession("d1")).toBe(false);
    expect(await store.getSession("d1")).toBeNull();
  });

  it("reports the TTL and slides it with touchSession", async () => {
    await store.setSession("t1", 1, { ttl: 100 });
    const ttl = (await store.getSessionTtl("t1")) as number;
    expect(ttl).toBeGreaterThan(98);
    expect(ttl).toBeLessThanOrEqual(100);
    expect(await store.touchSession("t1", 500)).toBe(true);
    expect(await store.getSessionTtl("t1")).toBeGreaterThan(498);
    expect(await store.touchSession("t1")).toBe(true);
    expect(await store.getSessionTtl("t1")).toBeGreaterThan(3598);
    expect(await store.touchSession("absent")).toBe(false);
    expect(await store.getSessionTtl("absent")).toBeNull();
    await store.setSession("t2", 1);
    expect(await store.getSessionTtl("t2")).toBeGreaterThan(3598);
  });

  it("makes expired sessions invisible at once to get, has, ttl and list", async () => {
    const s = await make({ prefix: unique() });
    await s.setSession("short", { a: 1 }, { ttl: 0.15 });
    await s.setSession("long", { a: 2 }, { ttl: 60 });
    expect(await s.getSession("short")).toEqual({ a: 1 });
    await sleep(250);
    expect(await s.getSession("short")).toBeNull();
    expect(await s.hasSession("short")).toBe(false);
    expect(await s.getSessionTtl("short")).toBeNull();
    expect(await s.touchSession("short")).toBe(false);
    const ids: string[] = [];
    for await (const id of s.listSessions()) ids.push(id);
    expect(ids).toEqual(["long"]);
    // A touch keeps a session alive past its first expiry.
    await s.setSession("slide", 1, { ttl: 0.2 });
    expect(await s.touchSession("slide", 60)).toBe(true);
    await sleep(250);
    expect(await s.getSession("slide")).toBe(1);
  });

  it("updates atomically: creates from null, returns the stored value", async () => {
    const created = await store.updateSession<{ count: number }>("u1", (current) => {
      expect(current).toBeNull();
      return { count: 1 };
    });
    expect(created).toEqual({ count: 1 });
    const next = await store.updateSession<{ count: number }>("u1", async (current) => ({
      count: (current?.count ?? 0) + 1,
    }));
    expect(next).toEqual({ count: 2 });
    expect(await store.getSession("u1")).toEqual({ count: 2 });
    await store.updateSession("u1", (c) => c, { ttl: 50 });
    expect(await store.getSessionTtl("u1")).toBeLessThanOrEqual(50);
  });

  it("loses no update under 50 concurrent updaters on 2 store instances", async () => {
    const prefix = unique();
    const a = await make({ prefix });
    const other = b.shared ? await make({ prefix }) : a;
    const updaters = Array.from({ length: 50 }, (_, i) =>
      (i % 2 === 0 ? a : other).updateSession<{ count: number; seen: number[] }>(
        "counter",
        async (current) => {
          // Yield inside fn so updates really overlap.
          await sleep(Math.random() * 3);
          return {
            count: (current?.count ?? 0) + 1,
            seen: [...(current?.seen ?? []), i],
          };
        },
      ),
    );
    await Promise.all(updaters);
    const final = await a.getSession<{ count: number; seen: number[] }>("counter");
    expect(final?.count).toBe(50);
    expect(new Set(final?.seen).size).toBe(50);
  });

  it("isolates prefixes", async () => {
    const a = await make({ prefix: `${unique()}a:` });
    const c = await make({ prefix: `${unique()}c:` });
    await a.setSession("same", "from a");
    await c.setSession("same", "from c");
    expect(await a.getSession("same")).toBe("from a");
    expect(await c.getSession("same")).toBe("from c");
    await a.deleteSession("same");
    expect(await c.getSession("same")).toBe("from c");
  });

  it("stores a copy: mutating after set or after get changes nothing stored", async () => {
    const value = { list: [1, 2], nested: { x: "a" } };
    await store.setSession("m1", value);
    value.list.push(3);
    value.nested.x = "changed";
    const got = await store.getSession<typeof value>("m1");
    expect(got).toEqual({ list: [1, 2], nested: { x: "a" } });
    got?.list.push(99);
    expect(await store.getSession("m1")).toEqual({ list: [1, 2], nested: { x: "a" } });
  });

  it("keeps __proto__ keys as plain data and never touches Object.prototype", async () => {
    const value = JSON.parse('{"__proto__":{"polluted":true},"a":1}');
    await store.setSession("proto", value);
    const got = await store.getSession<Record<string, unknown>>("proto");
    expect(Object.hasOwn(got as object, "__proto__")).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
  });

  it("accepts every visible-ASCII id, including glob and hash-tag characters", async () => {
    const ids = ["a*b", "a?b", "[ab]", "a\\b", "{x}", "}", "{", "%7D", "%", "a}b{c", "~!@#$^&()"];
    for (const id of ids) await store.setSession(id, id);
    for (const id of ids) expect(await store.getSession(id)).toBe(id);
    await store.setSession("x".repeat(512), "long id");
    expect(await store.getSession("x".repeat(512))).toBe("long id");
  });

  it("lists 10k sessions exactly once each, with glob characters in ids and prefix", async () => {
    const s = await make({ prefix: `${unique()}[*?]\\:` });
    const decoy = await make({ prefix: `${unique()}other:` });
    await decoy.setSession("decoy", 1);
    const expected = new Set<string>();
    for (let i = 0; i < 10_000; i++) expected.add(i % 7 === 0 ? `id*${i}?[x]}` : `id-${i}`);
    const all = [...expected];
    for (let i = 0; i < all.length; i += 500) {
      await Promise.all(all.slice(i, i + 500).map((id) => s.setSession(id, { i })));
    }
    const seen: string[] = [];
    for await (const id of s.listSessions()) seen.push(id);
    expect(seen.length).toBe(10_000);
    expect(new Set(seen)).toEqual(expected);
    const limited: string[] = [];
    for await (const id of s.listSessions({ limit: 25 })) limited.push(id);
    expect(limited.length).toBe(25);
  });

  it("round-trips random JSON values identically (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        await store.setSession("prop", value);
        expect(await store.getSession("prop")).toEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 150 },
    );
  });

  it("reports health", async () => {
    const health = await store.health();
    expect(health.ok).toBe(true);
    expect(health.backend).toBe(store.backend);
  });

  it("rejects every call after disconnect with ERR_STORE_CLOSED; disconnect is idempotent", async () => {
    const s = await make({ prefix: unique() });
    await s.setSession("x", 1);
    await s.disconnect();
    await s.disconnect();
    const closed = { code: "ERR_STORE_CLOSED" };
    await expect(s.getSession("x")).rejects.toMatchObject(closed);
    await expect(s.setSession("x", 1)).rejects.toMatchObject(closed);
    await expect(s.updateSession("x", () => 1)).rejects.toMatchObject(closed);
    await expect(s.deleteSession("x")).rejects.toMatchObject(closed);
    await expect(s.hasSession("x")).rejects.toMatchObject(closed);
    await expect(s.touchSession("x")).rejects.toMatchObject(closed);
    await expect(s.getSessionTtl("x")).rejects.toMatchObject(closed);
    await expect(s.acquireLock("x")).rejects.toMatchObject(closed);
    await expect(
      (async () => {
        for await (const _ of s.listSessions()) break;
      })(),
    ).rejects.toMatchObject(closed);
    expect((await s.health()).ok).toBe(false);
    const d = await make({ prefix: unique() });
    await d[Symbol.asyncDispose]();
    await expect(d.getSession("x")).rejects.toMatchObject(closed);
  });

  it("works detached from the store object", async () => {
    const { setSession, getSession } = store;
    await setSession("detached", 1);
    expect(await getSession("detached")).toBe(1);
  });
}
