import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore } from "../src/factory.js";
import {
  createHandleStore,
  type HandleStore,
  type HandleStoreOptions,
} from "../src/mcp/handles.js";
import { redisAccessOf } from "../src/mcp/support.js";
import type { SessionStore } from "../src/types.js";
import { type Instance, startInstance, WorkerError } from "./fixtures/v2-instances.js";
import {
  type RedisClusterHandle,
  type RedisNode,
  startRedis,
  startRedisCluster,
} from "./support/redis.js";

type Options = Omit<HandleStoreOptions, "redis" | "registry">;
interface Backend {
  make(options?: Options): { handles: HandleStore; registry: Registry };
  /** Redis only: a plain client on the same server, to look at keys. */
  raw?: () => Redis;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alice = { principal: "alice" };
const mallory = { principal: "mallory" };

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
  return "resolved";
}

async function messageOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => "resolved",
    (err: Error) => `${(err as { code?: string }).code}: ${err.message}`,
  );
}

/** The one handle suite: the same cases on every backend. */
function handleSuite(name: string, backend: () => Backend): void {
  describe(`handles on ${name}`, () => {
    it("create mints distinct opaque handles of at least 128 random bits; get returns a copy", async () => {
      const { handles } = backend().make();
      const made = await Promise.all(
        Array.from({ length: 100 }, (_, i) => handles.create({ i }, alice)),
      );
      expect(new Set(made).size).toBe(100);
      for (const h of made) expect(h).toMatch(/^h_[A-Za-z0-9_-]{32}$/);
      const got = await handles.get<{ i: number; extra?: boolean }>(made[3] as string, alice);
      expect(got).toEqual({ i: 3 });
      got.extra = true;
      expect(await handles.get(made[3] as string, alice)).toEqual({ i: 3 });
      await handles.close();
    });

    it("update is atomic: 50 concurrent appends lose nothing", async () => {
      const { handles } = backend().make();
      const h = await handles.create([], alice);
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          handles.update<number[]>(
            h,
            async (list) => {
              await sleep(Math.random() * 3);
              return [...list, i];
            },
            alice,
          ),
        ),
      );
      const list = await handles.get<number[]>(h, alice);
      expect([...list].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(await handles.update<number[]>(h, (l) => l.slice(0, 1), alice)).toHaveLength(1);
      await handles.close();
    });

    it("another principal's handle answers exactly as an unknown one", async () => {
      const { handles } = backend().make();
      const h = await handles.create({ secret: 1 }, alice);
      const unknown = `h_${"A".repeat(32)}`;
      // Thunks, not promises: each pair starts only when it is awaited.
      for (const [op, onUnknown, onForeign] of [
        ["get", () => handles.get(unknown, mallory), () => handles.get(h, mallory)],
        [
          "update",
          () => handles.update(unknown, () => ({}), mallory),
          () => handles.update(h, () => ({ stolen: true }), mallory),
        ],
        ["touch", () => handles.touch(unknown, mallory), () => handles.touch(h, mallory)],
      ] as const) {
        const [a, b] = await Promise.all([messageOf(onUnknown()), messageOf(onForeign())]);
        expect(a, op).toBe("ERR_HANDLE_NOT_FOUND: handle not found");
        expect(b, op).toBe(a);
      }
      expect(await handles.delete(h, mallory)).toBe(false);
      expect(await handles.delete(unknown, mallory)).toBe(false);
      expect(await handles.get(h, alice)).toEqual({ secret: 1 });
      await handles.close();
    });

    it("expiry is told apart from never-existed, only to the owner, and only for the retention", async () => {
      const { handles, registry } = backend().make({ expiredRetention: 0.6 });
      const h = await handles.create({ a: 1 }, { ...alice, ttl: 0.2 });
      expect(await handles.get(h, alice)).toEqual({ a: 1 });
      await sleep(300);
      expect(await codeOf(handles.get(h, alice))).toBe("ERR_HANDLE_EXPIRED");
      expect(await codeOf(handles.update(h, () => 1, alice))).toBe("ERR_HANDLE_EXPIRED");
      expect(await codeOf(handles.touch(h, alice))).toBe("ERR_HANDLE_EXPIRED");
      expect(await codeOf(handles.get(h, mallory))).toBe("ERR_HANDLE_NOT_FOUND");
      expect(await codeOf(handles.get(`h_${"B".repeat(32)}`, alice))).toBe("ERR_HANDLE_NOT_FOUND");
      await sleep(700);
      expect(await codeOf(handles.get(h, alice))).toBe("ERR_HANDLE_NOT_FOUND");
      const text = await registry.metrics();
      expect(text).toMatch(
        /mcp_session_store_handle_operations_total\{operation="get",outcome="expired"\} 1/,
      );
      expect(text).not.toContain(h);
      await handles.close();
    });

    it("touch slides the lifetime; delete ends it as not found", async () => {
      const { handles } = backend().make();
      const h = await handles.create({ a: 1 }, { ...alice, ttl: 0.4 });
      for (let i = 0; i < 3; i++) {
        await sleep(250);
        const expiresAt = await handles.touch(h, alice);
        expect(Math.abs(expiresAt - (Date.now() + 400))).toBeLessThan(100);
      }
      expect(await handles.get(h, alice)).toEqual({ a: 1 });
      const longer = await handles.touch(h, { ...alice, ttl: 60 });
      expect(longer).toBeGreaterThan(Date.now() + 59_000);
      await sleep(450);
      expect(await handles.get(h, alice)).toEqual({ a: 1 });
      expect(await handles.delete(h, alice)).toBe(true);
      expect(await handles.delete(h, alice)).toBe(false);
      expect(await codeOf(handles.get(h, alice))).toBe("ERR_HANDLE_NOT_FOUND");
      await handles.close();
    });

    it("bad input is typed", async () => {
      const { handles } = backend().make({ maxBytes: 100, maxTtl: 10 });
      const h = await handles.create(1, alice);
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      const cases: Array<[string, () => Promise<unknown>, string]> = [
        ["no principal", () => handles.get(h, {} as never), "ERR_INVALID_ARGUMENT"],
        ["empty principal", () => handles.create(1, { principal: "" }), "ERR_INVALID_ARGUMENT"],
        ["no options", () => handles.get(h, undefined as never), "ERR_INVALID_ARGUMENT"],
        ["handle not a string", () => handles.get(42 as never, alice), "ERR_INVALID_ARGUMENT"],
        ["empty handle", () => handles.touch("", alice), "ERR_INVALID_ARGUMENT"],
        ["long handle", () => handles.delete("h".repeat(300), alice), "ERR_INVALID_ARGUMENT"],
        ["malformed handle", () => handles.get("h_short", alice), "ERR_HANDLE_NOT_FOUND"],
        ["negative ttl", () => handles.create(1, { ...alice, ttl: -1 }), "ERR_INVALID_ARGUMENT"],
        ["NaN ttl", () => handles.touch(h, { ...alice, ttl: Number.NaN }), "ERR_INVALID_ARGUMENT"],
        ["ttl over max", () => handles.create(1, { ...alice, ttl: 11 }), "ERR_INVALID_ARGUMENT"],
        ["undefined data", () => handles.create(undefined, alice), "ERR_INVALID_ARGUMENT"],
        ["circular data", () => handles.create(circular, alice), "ERR_SERIALIZATION"],
        ["too large", () => handles.create("x".repeat(200), alice), "ERR_PAYLOAD_TOO_LARGE"],
        [
          "update too large",
          () => handles.update(h, () => "x".repeat(200), alice),
          "ERR_PAYLOAD_TOO_LARGE",
        ],
      ];
      for (const [label, run, code] of cases) expect(await codeOf(run()), label).toBe(code);
      expect(await handles.get(h, alice)).toBe(1);
      expect(() => backend().make({ defaultTtl: 0 })).toThrow(
        expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }),
      );
      await handles.close();
    });

    it("Redis keys: <prefix>h:{<handle>} with its lifetime, the expiry record bounded", async () => {
      const b = backend();
      if (b.raw === undefined) return;
      const { handles } = b.make({ expiredRetention: 100 });
      const h = await handles.create({ a: 1 }, { ...alice, ttl: 50 });
      const raw = b.raw();
      try {
        const keys = (await raw.keys(`*${h}*`)).sort();
        expect(keys).toEqual([`hs:h:{${h}}`, `hs:h:{${h}}:x`]);
        const [recordTtl, tombTtl] = await Promise.all(keys.map((k) => raw.pttl(k)));
        expect(recordTtl).toBeGreaterThan(49_000);
        expect(recordTtl).toBeLessThanOrEqual(50_000);
        expect(tombTtl).toBeGreaterThan(149_000);
        expect(tombTtl).toBeLessThanOrEqual(150_000);
      } finally {
        raw.disconnect();
        await handles.close();
      }
    });
  });
}

handleSuite("memory", () => ({
  make: (options) => {
    const registry = new Registry();
    return { handles: createHandleStore({ ...options, redis: undefined, registry }), registry };
  },
}));

let node: RedisNode;
let store: SessionStore;
beforeAll(async () => {
  node = await startRedis();
  store = await createRedisSessionStore({
    redisUrl: node.url,
    prefix: "hs:",
    instrumentation: false,
  });
});
afterAll(async () => {
  await store?.disconnect();
  await node?.stop();
});

handleSuite("Redis", () => ({
  make: (options) => {
    const registry = new Registry();
    const handles = createHandleStore({ ...options, redis: redisAccessOf(store), registry });
    return { handles, registry };
  },
  raw: () => new Redis(node.url),
}));

describe("on a Redis Cluster", () => {
  let cluster: RedisClusterHandle;
  let clusterStore: SessionStore;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
    clusterStore = await createRedisSessionStore({
      redis: { clusterNodes: cluster.seeds },
      prefix: "hc:",
      instrumentation: false,
    });
  });
  afterAll(async () => {
    await clusterStore?.disconnect();
    await cluster?.stop();
  });

  handleSuite("Redis Cluster", () => ({
    make: (options) => {
      const registry = new Registry();
      const handles = createHandleStore({
        ...options,
        redis: redisAccessOf(clusterStore),
        registry,
      });
      return { handles, registry };
    },
  }));
});

describe("handles across two processes on one Redis", () => {
  let a: Instance;
  let b: Instance;
  beforeAll(async () => {
    [a, b] = await Promise.all([
      startInstance(node.url, "two:", 0),
      startInstance(node.url, "two:", 0),
    ]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it("create on A, read on B; 50 concurrent updates across A and B lose nothing", async () => {
    const h = await a.call<string>({ op: "create", data: [], principal: "alice" });
    expect(await b.call({ op: "get", handle: h, principal: "alice" })).toEqual([]);
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 ? a : b).call({ op: "append", handle: h, principal: "alice", item: `u${i}` }),
      ),
    );
    const list = await a.call<string[]>({ op: "get", handle: h, principal: "alice" });
    expect([...list].sort()).toEqual(Array.from({ length: 50 }, (_, i) => `u${i}`).sort());
  });

  it("a foreign principal on B gets what an unknown handle gets", async () => {
    const h = await a.call<string>({ op: "create", data: 1, principal: "alice" });
    const foreign: WorkerError = await b
      .call<never>({ op: "get", handle: h, principal: "mallory" })
      .catch((e: unknown) => e as WorkerError);
    const unknown: WorkerError = await b
      .call<never>({ op: "get", handle: `h_${"C".repeat(32)}`, principal: "mallory" })
      .catch((e: unknown) => e as WorkerError);
    expect(foreign).toBeInstanceOf(WorkerError);
    expect([foreign.code, foreign.message]).toEqual([unknown.code, unknown.message]);
    expect(foreign.code).toBe("ERR_HANDLE_NOT_FOUND");
  });
});
