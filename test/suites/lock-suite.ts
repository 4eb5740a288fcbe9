/**
 * The lock suite: the cases every `Lock` implementation must pass with the same results (FIFO,
 * exclusion, fencing, expiry, signal, errors), on managers and on whole stores. A new backend
 * imports it and calls `lockSuite({ name, nodes, make })` with a fixture of its own.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemorySessionStore, createRedisSessionStore } from "../../src/factory.js";
import { MemoryLockManager } from "../../src/locks/memory.js";
import { RedlockManager } from "../../src/locks/redlock.js";
import type { LockManager, NotifyObservers } from "../../src/locks/types.js";
import { runWithLock } from "../../src/locks/with-lock.js";
import { KeyLayout } from "../../src/stores/keys.js";
import {
  internals,
  type Lock,
  type LockOptions,
  type SessionStore,
  type StoreObserver,
} from "../../src/types.js";
import { type RedisNode, startRedisNodes } from "../support/redis.js";

const PREFIX = "locktest:";
const layout = new KeyLayout(PREFIX);
const silent = { info: () => {}, warn: () => {}, error: () => {} };

type Hook = keyof StoreObserver;
type Counts = Record<Hook, number>;

/** One lock-taking instance: a manager or a store. */
export interface Party {
  acquire(id: string, options?: LockOptions): Promise<Lock>;
  withLock<T>(id: string, fn: (lock: Lock) => Promise<T>, options?: LockOptions): Promise<T>;
  close(): Promise<void>;
}

export interface Fixture {
  /** At least two instances that contend for the same locks. */
  parties: Party[];
  nodes: RedisNode[];
  /** One plain client per node, to look at keys. */
  admin: Redis[];
  counts: Counts;
  close(): Promise<void>;
}

function newCounts(): Counts {
  return { lockContention: 0, lockRetry: 0, lockLost: 0, redlockNodeError: 0, payloadSize: 0 };
}

function recorder(counts: Counts): NotifyObservers {
  const notify = (hook: Hook): void => {
    counts[hook] += 1;
  };
  return notify as NotifyObservers;
}

/** The store's own client options, so a dead node fails fast as it does in production. */
function nodeClient(node: RedisNode): Redis {
  const client = new Redis(node.port, node.host, {
    lazyConnect: true,
    commandTimeout: 1000,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 50,
  });
  client.on("error", () => {});
  return client;
}

function managerParty(manager: LockManager, ttl = 30_000): Party {
  const acquire = (id: string, o?: LockOptions): Promise<Lock> =>
    manager.acquire(id, {
      ttlMs: o?.ttl ?? ttl,
      waitTimeoutMs: o?.waitTimeout ?? o?.ttl ?? ttl,
      signal: o?.signal,
    });
  return {
    acquire,
    withLock: (id, fn, o) => runWithLock(() => acquire(id, o), fn),
    close: () => manager.close(),
  };
}

function storeParty(store: SessionStore): Party {
  return {
    acquire: (id, o) => store.acquireLock(id, o),
    withLock: (id, fn, o) => store.withLock(id, fn, o),
    close: () => store.disconnect(),
  };
}

function observeStore(store: SessionStore, counts: Counts): void {
  const inner = (store as unknown as Record<symbol, { observe(o: StoreObserver): () => void }>)[
    internals
  ];
  inner?.observe({
    lockContention: () => counts.lockContention++,
    lockRetry: () => counts.lockRetry++,
    lockLost: () => counts.lockLost++,
    redlockNodeError: () => counts.redlockNodeError++,
  });
}

async function connectAll(clients: Redis[]): Promise<void> {
  await Promise.all(clients.map((c) => c.connect()));
}

export const memoryManagerFixture = async (): Promise<Fixture> => {
  const counts = newCounts();
  // In-process locks: "two instances" are two handles on one manager.
  const manager = new MemoryLockManager({ notify: recorder(counts) });
  const party = managerParty(manager);
  return { parties: [party, party], nodes: [], admin: [], counts, close: () => manager.close() };
};

export const memoryStoreFixture = async (): Promise<Fixture> => {
  const counts = newCounts();
  const store = createMemorySessionStore({ prefix: PREFIX });
  observeStore(store, counts);
  const party = storeParty(store);
  return { parties: [party, party], nodes: [], admin: [], counts, close: () => store.disconnect() };
};

export function redisManagerFixture(n: number) {
  return async (nodes: RedisNode[]): Promise<Fixture> => {
    const counts = newCounts();
    const clients: Redis[] = [];
    const parties: Party[] = [];
    for (let i = 0; i < 2; i++) {
      const own = nodes.map(nodeClient);
      clients.push(...own);
      const manager = new RedlockManager({
        nodes: own.map((client, j) => ({ client, name: `127.0.0.1:${nodes[j]?.port}` })),
        key: (id, suffix) => layout.key(id, suffix),
        notify: recorder(counts),
        commandTimeout: 1000,
        logger: silent,
      });
      parties.push(managerParty(manager));
    }
    const admin = nodes.map(nodeClient);
    await connectAll([...clients, ...admin]);
    expect(nodes.length).toBe(n);
    return {
      parties,
      nodes,
      admin,
      counts,
      close: async () => {
        await Promise.all(parties.map((p) => p.close()));
        for (const c of [...clients, ...admin]) c.disconnect();
      },
    };
  };
}

export function redisStoreFixture() {
  return async (nodes: RedisNode[]): Promise<Fixture> => {
    const counts = newCounts();
    const parties: Party[] = [];
    for (let i = 0; i < 2; i++) {
      const store = await createRedisSessionStore({
        redisUrl: nodes[0]?.url,
        lockNodes: nodes.map((n) => n.url),
        prefix: PREFIX,
        commandTimeout: 1000,
        logger: silent,
      });
      observeStore(store, counts);
      parties.push(storeParty(store));
    }
    const admin = nodes.map(nodeClient);
    await connectAll(admin);
    return {
      parties,
      nodes,
      admin,
      counts,
      close: async () => {
        await Promise.all(parties.map((p) => p.close()));
        for (const c of admin) c.disconnect();
      },
    };
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => "resolved",
    (err: { code?: string }) => err.code ?? String(err),
  );
}

/** Resolves with "timer" if `promise` has not settled within `ms` (a hang guard, not a speed check). */
function within(promise: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise((resolve) => {
    timer = setTimeout(() => resolve("timer"), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

/** 8 contenders over the parties do a non-atomic read-increment-write `total` times in all. */
async function hammer(
  parties: Party[],
  id: string,
  total: number,
  onGrant?: (count: number) => Promise<void> | void,
): Promise<{ count: number; tokens: number[] }> {
  let shared = 0;
  let inside = 0;
  let done = 0;
  const tokens: number[] = [];
  const contenders = 8;
  await Promise.all(
    Array.from({ length: contenders }, async (_, c) => {
      const party = parties[c % parties.length] as Party;
      for (let i = 0; i < total / contenders; i++) {
        await party.withLock(
          id,
          async (lock) => {
            inside += 1;
            expect(inside).toBe(1);
            tokens.push(lock.fencingToken);
            const read = shared;
            await tick();
            shared = read + 1;
            inside -= 1;
          },
          { ttl: 5000, waitTimeout: 20_000 },
        );
        done += 1;
        await onGrant?.(done);
      }
    }),
  );
  return { count: shared, tokens };
}

function expectIncreasing(tokens: number[]): void {
  for (let i = 1; i < tokens.length; i++) {
    if (!((tokens[i] as number) > (tokens[i - 1] as number))) {
      throw new Error(`fencing token ${tokens[i]} after ${tokens[i - 1]} at grant ${i}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------

export interface Variant {
  name: string;
  nodes: number;
  make(nodes: RedisNode[]): Promise<Fixture>;
}

export function lockSuite(variant: Variant): void {
  describe(variant.name, () => {
    let nodes: RedisNode[] = [];
    let fx: Fixture;

    beforeAll(async () => {
      nodes = variant.nodes > 0 ? await startRedisNodes(variant.nodes) : [];
      fx = await variant.make(nodes);
    });
    afterAll(async () => {
      await fx?.close();
      await Promise.all(nodes.map((n) => n.stop()));
    });

    const [a, b] = [() => fx.parties[0] as Party, () => fx.parties[1] as Party];

    it("mutual exclusion: 8 contenders, 2,000 increments, increasing fencing tokens", async () => {
      const { count, tokens } = await hammer(fx.parties, `mx-${randomUUID()}`, 2000);
      expect(count).toBe(2000);
      expect(tokens).toHaveLength(2000);
      expectIncreasing(tokens);
    });

    it("waitTimeout 0 makes exactly one attempt and reports contention", async () => {
      const id = `once-${randomUUID()}`;
      const held = await a().acquire(id, { ttl: 5000 });
      const before = { ...fx.counts };
      expect(await codeOf(b().acquire(id, { waitTimeout: 0 }))).toBe("ERR_LOCK_TIMEOUT");
      expect(fx.counts.lockRetry - before.lockRetry).toBe(0);
      expect(fx.counts.lockContention - before.lockContention).toBe(1);
      await held.release();
      const next = await b().acquire(id, { waitTimeout: 0 });
      expect(next.fencingToken).toBeGreaterThan(held.fencingToken);
      await next.release();
    });

    it("a lock acquired after retries is valid; releasing an expired lock returns promptly", async () => {
      const id = `retry-${randomUUID()}`;
      const first = await a().acquire(id, { ttl: 200 });
      const lost = new Promise((resolve) =>
        first.signal.addEventListener("abort", resolve, { once: true }),
      );
      const second = await b().acquire(id, { ttl: 5000, waitTimeout: 3000 });
      expect(second.expiresAt).toBeGreaterThan(Date.now());
      expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
      await lost;
      expect((first.signal.reason as { code: string }).code).toBe("ERR_LOCK_LOST");
      expect(await within(first.release(), 2000)).toBeUndefined();
      // The expired lock's release deleted nothing of the new holder's.
      expect(await codeOf(a().acquire(id, { waitTimeout: 0 }))).toBe("ERR_LOCK_TIMEOUT");
      await second.release();
      await second.release(); // idempotent
    });

    it("FIFO within a process", async () => {
      const id = `fifo-${randomUUID()}`;
      const holder = await a().acquire(id);
      const order: number[] = [];
      const waits = [0, 1, 2, 3, 4].map((i) =>
        a()
          .acquire(id, { waitTimeout: 10_000 })
          .then(async (lock) => {
            order.push(i);
            await lock.release();
          }),
      );
      await holder.release();
      await Promise.all(waits);
      expect(order).toEqual([0, 1, 2, 3, 4]);
    });

    it("an event-loop stall longer than the lease aborts lock.signal, and withLock rejects", async () => {
      const id = `stall-${randomUUID()}`;
      const lostBefore = fx.counts.lockLost;
      let aborted: boolean | undefined;
      let reason: unknown;
      const run = a().withLock(
        id,
        async (lock) => {
          const end = performance.now() + 400;
          while (performance.now() < end) {
            // busy: no timer, no extension can run
          }
          // Read at once: no timer has run since the stall.
          aborted = lock.signal.aborted;
          reason = lock.signal.reason;
          await expect(lock.extend()).rejects.toMatchObject({ code: "ERR_LOCK_LOST" });
          return "finished after the lease";
        },
        { ttl: 150 },
      );
      await expect(run).rejects.toMatchObject({ code: "ERR_LOCK_LOST" });
      expect(aborted).toBe(true);
      expect((reason as { code: string }).code).toBe("ERR_LOCK_LOST");
      expect(fx.counts.lockLost).toBeGreaterThan(lostBefore);
      const next = await b().acquire(id, { waitTimeout: 0 });
      await next.release();
    });

    it("withLock extends a lease that fn outlives, and clears its timers", async () => {
      const id = `extend-${randomUUID()}`;
      const result = await a().withLock(
        id,
        async (lock) => {
          const first = lock.expiresAt;
          await new Promise((resolve) => setTimeout(resolve, 1000));
          expect(lock.signal.aborted).toBe(false);
          expect(lock.expiresAt).toBeGreaterThan(first);
          return 42;
        },
        // A third of the lease (200 ms) for each extension to come back, even on a busy machine.
        { ttl: 600 },
      );
      expect(result).toBe(42);
      const next = await b().acquire(id, { waitTimeout: 0 });
      await next.release();
    });

    it("withLock: fn's error wins, and the lock is released", async () => {
      const id = `err-${randomUUID()}`;
      const boom = new Error("boom");
      await expect(
        a().withLock(id, async () => {
          throw boom;
        }),
      ).rejects.toBe(boom);
      const next = await b().acquire(id, { waitTimeout: 0 });
      await next.release();
    });

    it("an extension racing a release is safe", async () => {
      const id = `race-${randomUUID()}`;
      for (let i = 0; i < 20; i++) {
        const lock = await a().acquire(id, { ttl: 5000, waitTimeout: 0 });
        const extended = lock.extend(5000);
        const released = lock.release();
        const [e] = await Promise.allSettled([extended, released]);
        if (e.status === "rejected")
          expect((e.reason as { code: string }).code).toBe("ERR_LOCK_LOST");
        await released;
        await expect(lock.extend()).rejects.toMatchObject({ code: "ERR_LOCK_LOST" });
        const next = await b().acquire(id, { waitTimeout: 0 });
        await next.release();
      }
      for (const admin of fx.admin) expect(await admin.exists(layout.key(id, "lock"))).toBe(0);
    });

    it("cancelling a wait with AbortSignal rejects ERR_ABORTED and leaves no waiter", async () => {
      const id = `abort-${randomUUID()}`;
      const holder = await a().acquire(id);
      const c1 = new AbortController();
      const c2 = new AbortController();
      const w1 = codeOf(b().acquire(id, { waitTimeout: 10_000, signal: c1.signal }));
      const w2 = codeOf(b().acquire(id, { waitTimeout: 10_000, signal: c2.signal }));
      if (fx.admin.length > 0) {
        // The head waiter's ticket reached the cross-process queue.
        await expect
          .poll(() => fx.admin[0]?.zcard(layout.key(id, "queue")), { timeout: 5000 })
          .toBe(1);
      } else {
        await tick();
      }
      c2.abort();
      expect(await w2).toBe("ERR_ABORTED");
      c1.abort();
      expect(await w1).toBe("ERR_ABORTED");
      for (const admin of fx.admin) expect(await admin.zcard(layout.key(id, "queue"))).toBe(0);
      await expect(b().acquire(id, { signal: AbortSignal.abort() })).rejects.toMatchObject({
        code: "ERR_ABORTED",
      });
      await holder.release();
      // A waiter left behind would now own the lock, or head the queue: a single attempt must win.
      const next = await a().acquire(id, { waitTimeout: 0 });
      await next.release();
    });

    it("fencing tokens strictly increase over random interleavings (property)", async () => {
      const id = `prop-${randomUUID()}`;
      const seen: number[] = [];
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ party: fc.integer({ min: 0, max: 1 }), release: fc.boolean() }), {
            minLength: 1,
            maxLength: 12,
          }),
          async (ops) => {
            let held: Lock | undefined;
            for (const op of ops) {
              const party = fx.parties[op.party] as Party;
              if (op.release && held !== undefined) {
                await held.release();
                held = undefined;
                continue;
              }
              const attempt = party.acquire(id, { ttl: 10_000, waitTimeout: 0 });
              if (held !== undefined) {
                expect(await codeOf(attempt)).toBe("ERR_LOCK_TIMEOUT");
                continue;
              }
              held = await attempt;
              if (seen.length > 0)
                expect(held.fencingToken).toBeGreaterThan(seen[seen.length - 1] as number);
              seen.push(held.fencingToken);
            }
            await held?.release();
          },
        ),
        { numRuns: 25 },
      );
      expect(seen.length).toBeGreaterThan(0);
    });

    if (variant.nodes > 0) {
      it("partial locks of a failed attempt are gone from every node", async () => {
        const id = `partial-${randomUUID()}`;
        const key = layout.key(id, "lock");
        // A foreign owner holds a majority of the nodes (all of them with 1 node) but not node 0.
        const foreign = fx.admin.slice(fx.admin.length === 1 ? 0 : 1);
        for (const admin of foreign) await admin.set(key, "foreign", "PX", 10_000);
        expect(await codeOf(a().acquire(id, { waitTimeout: 0 }))).toBe("ERR_LOCK_TIMEOUT");
        expect(await codeOf(a().acquire(id, { ttl: 5000, waitTimeout: 300 }))).toBe(
          "ERR_LOCK_TIMEOUT",
        );
        for (const admin of fx.admin) {
          expect(await admin.get(key)).toBe(foreign.includes(admin) ? "foreign" : null);
          expect(await admin.zcard(layout.key(id, "queue"))).toBe(0);
        }
        for (const admin of foreign) await admin.del(key);
      });

      it("survives SCRIPT FLUSH mid-run", async () => {
        const id = `flush-${randomUUID()}`;
        const { count, tokens } = await hammer(fx.parties, id, 400, async (done) => {
          if (done % 100 === 0) await Promise.all(fx.admin.map((c) => c.script("FLUSH")));
        });
        expect(count).toBe(400);
        expectIncreasing(tokens);
      });
    }

    if (variant.nodes === 3) {
      it("1 of 3 nodes killed mid-run: still exclusive and granting; 2 of 3: ERR_LOCK_QUORUM; restart: grants", async () => {
        const id = `kill-${randomUUID()}`;
        let killed = 0;
        const { count, tokens } = await hammer(fx.parties, id, 600, async (done) => {
          if (done === 200) {
            await fx.nodes[2]?.kill();
            killed = done;
          }
        });
        expect(killed).toBe(200);
        expect(count).toBe(600);
        expectIncreasing(tokens);

        await fx.nodes[1]?.kill();
        const waitTimeout = 500;
        expect(await codeOf(a().acquire(id, { waitTimeout }))).toBe("ERR_LOCK_QUORUM");
        expect(await codeOf(a().acquire(id, { waitTimeout: 0 }))).toBe("ERR_LOCK_QUORUM");
        expect(fx.counts.redlockNodeError).toBeGreaterThan(0);

        await Promise.all([fx.nodes[1]?.restart(), fx.nodes[2]?.restart()]);
        const lock = await a().acquire(id, { ttl: 5000, waitTimeout: 10_000 });
        expect(lock.fencingToken).toBeGreaterThan(tokens[tokens.length - 1] as number);
        await lock.release();
        const again = await b().withLock(id, async (l) => l.fencingToken, { waitTimeout: 10_000 });
        expect(again).toBeGreaterThan(lock.fencingToken);
      });
    }

    it("close(): pending waits reject ERR_STORE_CLOSED, later calls too", async () => {
      const extra = await variant.make(nodes);
      const id = `close-${randomUUID()}`;
      const [p, q] = extra.parties as [Party, Party];
      const holder = await p.acquire(id);
      const waiting = codeOf(q.acquire(id, { waitTimeout: 10_000 }));
      const waiting2 = codeOf(q.acquire(id, { waitTimeout: 10_000 }));
      await tick();
      await extra.close();
      expect(await waiting).toBe("ERR_STORE_CLOSED");
      expect(await waiting2).toBe("ERR_STORE_CLOSED");
      expect(holder.signal.aborted).toBe(true);
      expect(await codeOf(p.acquire(id, { waitTimeout: 0 }))).toBe("ERR_STORE_CLOSED");
      await holder.release();
    });
  });
}
