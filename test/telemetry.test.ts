import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ErrorCode } from "../src/errors.js";
import { createMemorySessionStore, createRedisSessionStore } from "../src/factory.js";
import { metricsHandler, prefersOpenMetrics } from "../src/telemetry/http.js";
import { instrument } from "../src/telemetry/instrument.js";
import { METRIC_NAMES } from "../src/telemetry/metrics.js";
import { SeriesHistogram } from "../src/telemetry/series-histogram.js";
import {
  type Backend,
  internals,
  type Lock,
  type SessionStore,
  type StoreInternals,
} from "../src/types.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const N = METRIC_NAMES;
type Snapshot = Map<string, number>;

/** Every sample except bucket and sum lines (timing-dependent) and the sessions gauge. */
async function snapshot(registry: Registry): Promise<Snapshot> {
  const out: Snapshot = new Map();
  for (const metric of await registry.getMetricsAsJSON()) {
    if (metric.name === N.sessions) continue;
    for (const value of metric.values) {
      const name = (value as { metricName?: string }).metricName ?? metric.name;
      if (name.endsWith("_bucket") || name.endsWith("_sum")) continue;
      out.set(key(name, value.labels as Record<string, string | number>), value.value);
    }
  }
  return out;
}

function key(name: string, labels: Record<string, string | number>): string {
  const parts = Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`);
  return `${name}{${parts.join(",")}}`;
}

function diff(before: Snapshot, after: Snapshot): Record<string, number> {
  const moved: Record<string, number> = {};
  for (const [k, v] of after) {
    const delta = v - (before.get(k) ?? 0);
    if (delta !== 0) moved[k] = delta;
  }
  for (const k of before.keys()) if (!after.has(k)) moved[k] = Number.NaN;
  return moved;
}

const dur = (backend: Backend, operation: string, outcome: string) =>
  key(`${N.operationDuration}_count`, { operation, backend, outcome });
const err = (backend: Backend, operation: string, code: string) =>
  key(N.operationErrors, { operation, backend, code });
const size = (backend: Backend, operation: string) =>
  key(`${N.payloadSize}_count`, { operation, backend });
const acquireOutcome = (backend: Backend, outcome: string) =>
  key(`${N.lockAcquireDuration}_count`, { backend, outcome });
const hold = (backend: Backend) => key(`${N.lockHoldDuration}_count`, { backend });
const perBackend = (name: string, backend: Backend) => key(name, { backend });

/** The series `action` moved. */
async function moves(
  registry: Registry,
  action: () => Promise<unknown>,
): Promise<Record<string, number>> {
  const before = await snapshot(registry);
  await action();
  return diff(before, await snapshot(registry));
}

async function sessionsGauge(registry: Registry, backend: Backend): Promise<number | undefined> {
  const metric = await registry.getSingleMetric(N.sessions)?.get();
  return metric?.values.find((v) => v.labels.backend === backend)?.value;
}

/** Polls `probe` (no fixed sleep) until it returns true or `ms` pass. */
async function until(probe: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function promtool(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("/usr/bin/promtool", ["check", "metrics"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

/** promtool's complaints, minus prom-client's own `nodejs_active_*_total` gauges. */
function lintProblems(output: string): string[] {
  return output
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .filter(
      (line) =>
        !/^nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/.test(line),
    );
}

let redis: RedisNode;
const open: SessionStore[] = [];
let prefixes = 0;

beforeAll(async () => {
  redis = await startRedis();
}, 60_000);

afterEach(async () => {
  await Promise.all(open.splice(0).map((store) => store.disconnect().catch(() => {})));
  vi.restoreAllMocks();
  vi.useRealTimers();
});

afterAll(async () => {
  await redis?.stop();
});

async function makeStore(
  backend: Backend,
  registry: Registry,
  extra: object = {},
): Promise<SessionStore> {
  const store =
    backend === "memory"
      ? createMemorySessionStore({ instrumentation: { registry }, ...extra })
      : await createRedisSessionStore({
          redisUrl: redis.url,
          prefix: `telemetry${++prefixes}:`,
          commandTimeout: 500,
          instrumentation: { registry },
          ...extra,
        });
  open.push(store);
  return store;
}

describe.each(["memory", "redis"] as const)("metrics on the %s backend", (backend) => {
  it("creates every expected series at zero before the first operation", async () => {
    const registry = new Registry();
    await makeStore(backend, registry);
    const snap = await snapshot(registry);
    for (const operation of ["get", "has", "ttl", "touch", "delete"]) {
      for (const outcome of ["hit", "miss", "error"])
        expect(snap.get(dur(backend, operation, outcome))).toBe(0);
    }
    for (const operation of [
      "set",
      "update",
      "list",
      "health",
      "lock_acquire",
      "lock_extend",
      "lock_release",
    ]) {
      for (const outcome of ["ok", "error"])
        expect(snap.get(dur(backend, operation, outcome))).toBe(0);
      expect(snap.get(dur(backend, operation, "hit"))).toBeUndefined();
    }
    for (const operation of ["get", "set", "update"])
      expect(snap.get(size(backend, operation))).toBe(0);
    for (const outcome of ["acquired", "timeout", "error", "aborted"]) {
      expect(snap.get(acquireOutcome(backend, outcome))).toBe(0);
    }
    expect(snap.get(err(backend, "get", ErrorCode.BACKEND_UNAVAILABLE))).toBe(0);
    expect(snap.get(err(backend, "lock_acquire", ErrorCode.LOCK_TIMEOUT))).toBe(0);
    expect(snap.get(err(backend, "update", ErrorCode.CONFLICT))).toBe(0);
    expect(snap.get(hold(backend))).toBe(0);
    for (const name of [N.lockContention, N.lockRetries, N.lockLost, N.locksHeld, N.lockWaiters]) {
      expect(snap.get(perBackend(name, backend))).toBe(0);
    }
    const mode = backend === "memory" ? "memory" : "standalone";
    expect(snap.get(key(N.backendInfo, { backend, mode, fallback: "false" }))).toBe(1);
  });

  it("moves exactly the expected series for each operation", async () => {
    const registry = new Registry();
    const store = await makeStore(backend, registry);
    const b = backend;

    expect(await moves(registry, () => store.setSession("s1", { a: 1 }))).toEqual({
      [dur(b, "set", "ok")]: 1,
      [size(b, "set")]: 1,
    });
    expect(await moves(registry, () => store.getSession("s1"))).toEqual({
      [dur(b, "get", "hit")]: 1,
      [size(b, "get")]: 1,
    });
    expect(await moves(registry, () => store.getSession("absent"))).toEqual({
      [dur(b, "get", "miss")]: 1,
    });
    expect(
      await moves(registry, () =>
        store.updateSession<{ a: number }>("s1", (c) => ({ a: (c?.a ?? 0) + 1 })),
      ),
    ).toEqual({ [dur(b, "update", "ok")]: 1, [size(b, "update")]: 1 });
    expect(await moves(registry, () => store.hasSession("s1"))).toEqual({
      [dur(b, "has", "hit")]: 1,
    });
    expect(await moves(registry, () => store.hasSession("absent"))).toEqual({
      [dur(b, "has", "miss")]: 1,
    });
    expect(await moves(registry, () => store.touchSession("s1", 100))).toEqual({
      [dur(b, "touch", "hit")]: 1,
    });
    expect(await moves(registry, () => store.touchSession("absent"))).toEqual({
      [dur(b, "touch", "miss")]: 1,
    });
    expect(await moves(registry, () => store.getSessionTtl("s1"))).toEqual({
      [dur(b, "ttl", "hit")]: 1,
    });
    expect(await moves(registry, () => store.getSessionTtl("absent"))).toEqual({
      [dur(b, "ttl", "miss")]: 1,
    });
    const ids: string[] = [];
    expect(
      await moves(registry, async () => {
        for await (const id of store.listSessions()) ids.push(id);
      }),
    ).toEqual({ [dur(b, "list", "ok")]: 1 });
    expect(ids).toEqual(["s1"]);
    expect(await moves(registry, () => store.health())).toEqual({ [dur(b, "health", "ok")]: 1 });
    expect(await moves(registry, () => store.deleteSession("s1"))).toEqual({
      [dur(b, "delete", "hit")]: 1,
    });
    expect(await moves(registry, () => store.deleteSession("s1"))).toEqual({
      [dur(b, "delete", "miss")]: 1,
    });

    // Errors: the original error reaches the caller, the code becomes a label.
    let caught: unknown;
    expect(
      await moves(registry, () =>
        store.setSession("bad id", 1).catch((e: unknown) => (caught = e)),
      ),
    ).toEqual({ [dur(b, "set", "error")]: 1, [err(b, "set", ErrorCode.INVALID_SESSION_ID)]: 1 });
    expect(caught).toMatchObject({ code: ErrorCode.INVALID_SESSION_ID });
    expect(
      await moves(registry, () =>
        store.setSession("s2", { big: "x".repeat(2_000_000) }).catch(() => {}),
      ),
    ).toEqual({ [dur(b, "set", "error")]: 1, [err(b, "set", ErrorCode.PAYLOAD_TOO_LARGE)]: 1 });

    // Locks.
    let lock: Lock | undefined;
    expect(
      await moves(registry, async () => {
        lock = await store.acquireLock("s3", { ttl: 5000 });
      }),
    ).toEqual({
      [dur(b, "lock_acquire", "ok")]: 1,
      [acquireOutcome(b, "acquired")]: 1,
      [perBackend(N.locksHeld, b)]: 1,
    });
    if (lock === undefined) throw new Error("no lock");
    const held = lock;
    expect(await moves(registry, () => held.extend(5000))).toEqual({
      [dur(b, "lock_extend", "ok")]: 1,
    });
    const contended = await moves(registry, () =>
      store.acquireLock("s3", { waitTimeout: 0 }).catch((e: unknown) => (caught = e)),
    );
    expect(caught).toMatchObject({ code: ErrorCode.LOCK_TIMEOUT });
    expect(contended).toEqual({
      [dur(b, "lock_acquire", "error")]: 1,
      [err(b, "lock_acquire", ErrorCode.LOCK_TIMEOUT)]: 1,
      [acquireOutcome(b, "timeout")]: 1,
      [perBackend(N.lockContention, b)]: 1,
    });
    expect(await moves(registry, () => held.release())).toEqual({
      [dur(b, "lock_release", "ok")]: 1,
      [hold(b)]: 1,
      [perBackend(N.locksHeld, b)]: -1,
    });
    expect(await moves(registry, () => store.withLock("s3", async (l) => l.fencingToken))).toEqual({
      [dur(b, "lock_acquire", "ok")]: 1,
      [acquireOutcome(b, "acquired")]: 1,
      [dur(b, "lock_release", "ok")]: 1,
      [hold(b)]: 1,
    });
  });

  it("shows a waiter and its wait while another holder keeps the lock", async () => {
    const registry = new Registry();
    const first = await makeStore(backend, registry);
    // Memory locks live in one store; on Redis a second store (second client) contends.
    const second =
      backend === "memory"
        ? first
        : await makeStore(backend, new Registry(), {
            prefix: internalsOf(first).redis?.prefix,
          });
    const secondRegistry = (second as SessionStore & { registry: Registry }).registry;
    const lock = await first.acquireLock("contended", { ttl: 10_000 });
    const waiting = second.acquireLock("contended", { ttl: 10_000, waitTimeout: 10_000 });
    const gauge = async (name: string) =>
      (await snapshot(secondRegistry)).get(perBackend(name, backend));
    await until(
      async () => (await gauge(N.lockWaiters)) === 1 && ((await gauge(N.lockContention)) ?? 0) >= 1,
    );
    await lock.release();
    const next = await waiting;
    const snap = await snapshot(secondRegistry);
    expect(snap.get(perBackend(N.lockWaiters, backend))).toBe(0);
    expect(snap.get(acquireOutcome(backend, "acquired"))).toBe(backend === "memory" ? 2 : 1);
    expect(snap.get(perBackend(N.locksHeld, backend))).toBe(1);
    await next.release();
    expect((await snapshot(secondRegistry)).get(perBackend(N.locksHeld, backend))).toBe(0);
  });

  it("reports the number of live sessions", async () => {
    const registry = new Registry();
    const store = await makeStore(backend, registry);
    await Promise.all(["a", "b", "c"].map((id) => store.setSession(id, 1)));
    await until(async () => (await sessionsGauge(registry, backend)) === 3);
    if (backend === "memory") {
      await store.deleteSession("a");
      expect(await sessionsGauge(registry, backend)).toBe(2);
    }
  });

  it("keeps the series count unchanged across 100,000 distinct session ids", async () => {
    const registry = new Registry();
    const store = await makeStore(backend, registry);
    await store.setSession("warm", 1);
    await store.getSession("warm");
    await store.getSession("cold");
    await store.deleteSession("warm");
    const series = async () =>
      (await registry.metrics()).split("\n").filter((l) => l && !l.startsWith("#")).length;
    const before = await series();
    const total = backend === "memory" ? 100_000 : 20_000;
    for (let start = 0; start < total; start += 500) {
      await Promise.all(
        Array.from({ length: 500 }, async (_, i) => {
          const id = `session-${start + i}-${Math.random().toString(36).slice(2)}`;
          await store.setSession(id, { i });
          await store.getSession(id);
          await store.deleteSession(id);
        }),
      );
    }
    expect(await series()).toBe(before);
    expect(await registry.metrics()).not.toContain("session-");
  }, 60_000);
});

describe("metrics on a failing Redis", () => {
  it("counts ERR_BACKEND_UNAVAILABLE when the node dies, and recovers", async () => {
    const node = await startRedis();
    try {
      const registry = new Registry();
      const store = await createRedisSessionStore({
        redisUrl: node.url,
        commandTimeout: 300,
        instrumentation: { registry },
      });
      open.push(store);
      await store.setSession("x", 1);
      await node.kill();
      let caught: unknown;
      const moved = await moves(registry, () =>
        store.getSession("x").catch((e: unknown) => (caught = e)),
      );
      expect(caught).toMatchObject({ code: ErrorCode.BACKEND_UNAVAILABLE });
      expect(moved).toEqual({
        [dur("redis", "get", "error")]: 1,
        [err("redis", "get", ErrorCode.BACKEND_UNAVAILABLE)]: 1,
      });
      const health = await moves(registry, () => store.health());
      expect(health).toEqual({
        [dur("redis", "health", "error")]: 1,
        [err("redis", "health", ErrorCode.BACKEND_UNAVAILABLE)]: 1,
      });
    } finally {
      await node.stop();
    }
  });
});

describe("registries", () => {
  it("never touches the global registry and shares metrics between stores on one registry", async () => {
    const { register } = await import("prom-client");
    const globalBefore = register.getMetricsAsArray().length;
    const shared = new Registry();
    const a = await makeStore("memory", shared);
    const b = await makeStore("redis", shared);
    expect(register.getMetricsAsArray().length).toBe(globalBefore);
    await a.setSession("one", 1);
    await b.setSession("one", 1);
    const snap = await snapshot(shared);
    expect(snap.get(dur("memory", "set", "ok"))).toBe(1);
    expect(snap.get(dur("redis", "set", "ok"))).toBe(1);
    // Default registry per store, exposed as `registry`.
    const own = instrument(createMemorySessionStore({ instrumentation: false }));
    open.push(own);
    expect(own.registry).toBeInstanceOf(Registry);
    expect(own.registry).not.toBe(register);
  });

  it("keeps the counts of a store when another store joins the registry", async () => {
    const shared = new Registry();
    const a = await makeStore("memory", shared);
    await a.setSession("kept", 1);
    await makeStore("memory", shared);
    expect((await snapshot(shared)).get(dur("memory", "set", "ok"))).toBe(1);
  });

  it("renders a SeriesHistogram exactly as prom-client renders its Histogram, and survives a reset", async () => {
    const values = [0, 0.00005, 0.00007, 0.0009, 1, 2.5, 3, 100];
    const registry = new Registry();
    const ours = SeriesHistogram.register(registry, {
      name: "ours",
      help: "h",
      labelNames: ["a"],
      buckets: [0.00005, 0.001, 2.5],
    });
    const theirs = new Histogram({
      name: "theirs",
      help: "h",
      labelNames: ["a"],
      buckets: [0.00005, 0.001, 2.5],
      registers: [registry],
    });
    const series = ours.series({ a: "x" });
    expect(ours.series({ a: "x" })).toBe(series);
    for (const v of values) {
      series.observe(v);
      theirs.observe({ a: "x" }, v);
    }
    const text = await registry.metrics();
    const samples = (name: string) =>
      text
        .split("\n")
        .filter((line) => line.startsWith(`${name}_`))
        .map((line) => line.slice(name.length))
        .sort();
    expect(samples("ours")).toEqual(samples("theirs"));
    expect(samples("ours")).toContain('_bucket{le="+Inf",a="x"} 8');
    expect(samples("ours")).toContain('_count{a="x"} 8');
    expect(() => series.observe(Number.NaN)).toThrow(TypeError);
    registry.resetMetrics();
    series.observe(0.5);
    expect((await ours.get()).values.find((v) => v.metricName === "ours_count")?.value).toBe(1);
  });

  it("refuses a registry holding a same-named metric of another shape", () => {
    const registry = new Registry();
    new Counter({ name: N.operationDuration, help: "not ours", registers: [registry] });
    const bare = createMemorySessionStore({ instrumentation: false });
    open.push(bare);
    expect(() => instrument(bare, { registry })).toThrow(/already holds a metric/);
  });

  it("validates bucket options", () => {
    const bare = createMemorySessionStore({ instrumentation: false });
    open.push(bare);
    expect(() => instrument(bare, { durationBuckets: [0.1, 0.05] })).toThrow(/durationBuckets/);
    const custom = instrument(bare, { durationBuckets: [0.5, 1], lockBuckets: [1, 60] });
    expect(custom.registry.getSingleMetric(N.operationDuration)).toMatchObject({
      upperBounds: [0.5, 1],
    });
  });
});

describe("the instrumented store", () => {
  it("keeps results and errors, forwards backend and internals, and works detached", async () => {
    const bare = createMemorySessionStore({ instrumentation: false });
    const store = instrument(bare);
    open.push(store);
    expect(store.backend).toBe("memory");
    expect(internalsOf(store)).toBeDefined();
    expect(internalsOf(store).mode).toBe("memory");
    const { setSession, getSession, updateSession, withLock, acquireLock } = store;
    await setSession("d", { n: 1 });
    expect(await getSession("d")).toEqual({ n: 1 });
    expect(await updateSession<{ n: number }>("d", (c) => ({ n: (c?.n ?? 0) + 1 }))).toEqual({
      n: 2,
    });
    expect(await withLock("d", async (lock) => typeof lock.fencingToken)).toBe("number");
    const lock = await acquireLock("d");
    const { release, extend } = lock;
    await extend(1000);
    await release();
    const boom = new Error("callback failed");
    await expect(updateSession("d", () => Promise.reject(boom))).rejects.toBe(boom);
    await expect(withLock("d", async () => Promise.reject(boom))).rejects.toBe(boom);
  });

  it("counts list only for the store's own time and once per iteration, early break included", async () => {
    const registry = new Registry();
    const store = await makeStore("memory", registry);
    await Promise.all(["a", "b", "c"].map((id) => store.setSession(id, 1)));
    const moved = await moves(registry, async () => {
      for await (const _ of store.listSessions()) break;
    });
    expect(moved).toEqual({ [dur("memory", "list", "ok")]: 1 });
    await expect(async () => store.listSessions({ limit: -1 })).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
    });
  });

  it("never lets a throwing registry change a result", async () => {
    const registry = new Registry();
    const store = await makeStore("memory", registry);
    const boom = () => {
      throw new Error("registry down");
    };
    for (const metric of registry.getMetricsAsArray()) {
      const target = metric as unknown as Record<string, unknown>;
      for (const method of ["observe", "inc", "dec", "set", "labels", "zero", "remove"])
        target[method] = boom;
    }
    await store.setSession("t", { v: 1 });
    expect(await store.getSession("t")).toEqual({ v: 1 });
    expect(await store.hasSession("nope")).toBe(false);
    await expect(store.setSession("bad id", 1)).rejects.toMatchObject({
      code: ErrorCode.INVALID_SESSION_ID,
    });
    expect(await store.withLock("t", async () => 42)).toBe(42);
    await expect(
      store.acquireLock("t", { waitTimeout: 0 }).then((l) => l.release()),
    ).resolves.toBeUndefined();
  });

  it("never lets a registry that throws at construction stop instrument()", async () => {
    for (const proto of [Counter.prototype, Gauge.prototype, Histogram.prototype]) {
      for (const method of ["inc", "set", "zero", "labels"] as const) {
        if (method in proto) {
          vi.spyOn(
            proto as unknown as Record<string, () => void>,
            method as never,
          ).mockImplementation(() => {
            throw new Error("registry down");
          });
        }
      }
    }
    const store = instrument(createMemorySessionStore({ instrumentation: false }));
    open.push(store);
    await store.setSession("t", 1);
    expect(await store.getSession("t")).toBe(1);
  });

  it("serves the last Redis session count within 100 ms and counts at most every 15 s", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    let calls = 0;
    let resolveCount: ((n: number) => void) | undefined;
    const fake = fakeStore("redis", {
      countSessions: () => {
        calls++;
        return new Promise<number>((resolve) => {
          resolveCount = resolve;
        });
      },
    });
    const store = instrument(fake);
    let first = false;
    const scrape = store.registry.metrics().then((text) => {
      first = true;
      return text;
    });
    await vi.advanceTimersByTimeAsync(99);
    expect(first).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await scrape).not.toContain(`${N.sessions}{`);
    resolveCount?.(7);
    await vi.advanceTimersByTimeAsync(0);
    expect(await sessionsGauge(store.registry, "redis")).toBe(7);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(14_000);
    await store.registry.metrics();
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    const again = store.registry.metrics();
    await vi.advanceTimersByTimeAsync(100);
    // The slow count did not block the scrape: the last value is served meanwhile.
    expect(await again).toContain(`${N.sessions}{backend="redis"} 7`);
    expect(calls).toBe(2);
    resolveCount?.(9);
    await vi.advanceTimersByTimeAsync(0);
    expect(await sessionsGauge(store.registry, "redis")).toBe(9);
    expect(calls).toBe(2);
  });
});

function internalsOf(store: SessionStore): StoreInternals {
  return (store as unknown as { [internals]: StoreInternals })[internals];
}

/** A minimal store for what needs no backend: answers from a Map, internals on request. */
function fakeStore(backend: Backend, overrides: Partial<StoreInternals> = {}): SessionStore {
  const data = new Map<string, unknown>();
  const store: SessionStore & { [internals]: StoreInternals } = {
    backend,
    getSession: async <T>(id: string) => (data.has(id) ? (data.get(id) as T) : null),
    setSession: async (id, value) => {
      data.set(id, value);
    },
    updateSession: async <T>(id: string, fn: (c: T | null) => T | Promise<T>) => {
      const next = await fn((data.get(id) as T) ?? null);
      data.set(id, next);
      return next;
    },
    deleteSession: async (id) => data.delete(id),
    hasSession: async (id) => data.has(id),
    touchSession: async (id) => data.has(id),
    getSessionTtl: async (id) => (data.has(id) ? 10 : null),
    listSessions: () => ({
      async *[Symbol.asyncIterator]() {
        yield* data.keys();
      },
    }),
    acquireLock: async () => {
      throw new Error("no locks here");
    },
    withLock: async () => {
      throw new Error("no locks here");
    },
    health: async () => ({ ok: true, backend }),
    disconnect: async () => {},
    [Symbol.asyncDispose]: async () => {},
    [internals]: {
      mode: backend === "memory" ? "memory" : "standalone",
      fallback: false,
      observe: () => () => {},
      countSessions: async () => data.size,
      ...overrides,
    },
  };
  return store;
}

describe("exposition", () => {
  async function busyRegistry(): Promise<Registry> {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const memory = await makeStore("memory", registry);
    const redisStore = await makeStore("redis", registry);
    for (const store of [memory, redisStore]) {
      await store.setSession("p", { a: [1, 2, 3] });
      await store.getSession("p");
      await store.getSession("q");
      await store.setSession("bad id", 1).catch(() => {});
      await store.withLock("p", async () => {});
      await store.acquireLock("p", { waitTimeout: 0 }).then((l) => l.release());
    }
    return registry;
  }

  it("passes promtool check metrics (Prometheus text), also after an OpenMetrics scrape", async () => {
    const registry = await busyRegistry();
    const first = await promtool(await registry.metrics());
    expect(lintProblems(first.output)).toEqual([]);
    // An OpenMetrics rendering must not rename the registry's counters.
    await renderThroughHandler(registry, "application/openmetrics-text;version=1.0.0");
    const text = await registry.metrics();
    expect(text).toContain(`# TYPE ${N.operationErrors} counter`);
    const second = await promtool(text);
    expect(lintProblems(second.output)).toEqual([]);
  });

  it("serves Prometheus text by default and OpenMetrics with exemplars when asked", async () => {
    const { trace: api, context } = await import("@opentelemetry/api");
    const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import(
      "@opentelemetry/sdk-trace-base"
    );
    const { AsyncLocalStorageContextManager } = await import("@opentelemetry/context-async-hooks");
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    const provider = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
    });
    try {
      const registry = new Registry();
      const store = instrument(createMemorySessionStore({ instrumentation: false }), {
        registry,
        tracer: provider.getTracer("test"),
      });
      open.push(store);
      await store.setSession("e", 1);
      await store.getSession("e");
      await store.withLock("e", async () => {});

      const plain = await renderThroughHandler(registry, undefined);
      expect(plain.type).toBe(registry.contentType);
      expect(plain.body).not.toContain("trace_id");
      expect(plain.body).not.toContain("# EOF");

      const om = await renderThroughHandler(
        registry,
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
      );
      expect(om.type).toBe("application/openmetrics-text; version=1.0.0; charset=utf-8");
      expect(om.body.endsWith("# EOF\n")).toBe(true);
      expect(om.body).toMatch(
        /mcp_session_store_operation_duration_seconds_bucket\{le="[^"]+",operation="get",backend="memory",outcome="hit"\} 1 # \{trace_id="[0-9a-f]{32}",span_id="[0-9a-f]{16}"\} [0-9.e-]+ [0-9.]+/,
      );
      expect(om.body).toMatch(
        /mcp_session_store_lock_acquire_duration_seconds_bucket\{[^}]*outcome="acquired"\} 1 # \{trace_id=/,
      );
      expect(om.body).toContain(`# TYPE mcp_session_store_operation_errors counter`);
      expect(om.body).toMatch(/^mcp_session_store_operation_errors_total\{/m);
      expect(om.body).not.toContain("_total_total");
      // The Prometheus text afterwards is unchanged by the OpenMetrics rendering.
      const after = await renderThroughHandler(registry, "text/plain");
      expect(after.body).toContain(`# TYPE ${N.operationErrors} counter`);
      expect(api).toBeDefined();
    } finally {
      await provider.shutdown();
      context.disable();
    }
  });

  it("negotiates the Accept header", () => {
    expect(prefersOpenMetrics(undefined)).toBe(false);
    expect(prefersOpenMetrics("text/plain")).toBe(false);
    expect(prefersOpenMetrics("application/openmetrics-text")).toBe(true);
    expect(prefersOpenMetrics("application/openmetrics-text;version=0.0.1")).toBe(false);
    expect(prefersOpenMetrics("text/plain;q=1,application/openmetrics-text;q=0.5")).toBe(false);
    expect(prefersOpenMetrics("application/openmetrics-text;q=0")).toBe(false);
  });

  it("answers 500 instead of throwing when collection fails", async () => {
    const registry = new Registry();
    new Gauge({
      name: "broken",
      help: "collect throws",
      registers: [registry],
      collect() {
        throw new Error("boom");
      },
    });
    const server = http.createServer(metricsHandler(registry));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(response.status).toBe(500);
      await response.text();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

/** Scrapes `registry` through `metricsHandler` on a real node:http server. */
async function renderThroughHandler(
  registry: Registry,
  accept: string | undefined,
): Promise<{ type: string; body: string }> {
  const handler = metricsHandler(registry);
  const server = http.createServer((req, res) =>
    req.url === "/metrics" ? handler(req, res) : res.end(),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
      headers: accept === undefined ? {} : { accept },
    });
    expect(response.status).toBe(200);
    return { type: response.headers.get("content-type") ?? "", body: await response.text() };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}
