import { randomBytes, randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { MemoryLockManager } from "../src/locks/memory.js";
import { keysOf } from "../src/locks/redlock/keys.js";
import { defineScripts, type Scripted } from "../src/locks/redlock/scripts.js";
import { RedlockManager } from "../src/locks/redlock.js";
import type { Lock } from "../src/types.js";
import { type RedisNode, startRedisNodes } from "./support/redis.js";

/*
 * Hand-over: a release gives the lock to the head of the cross-process queue inside its script,
 * and the waiter holds it without an acquire round trip.
 */

const silent = { info: () => {}, warn: () => {}, error: () => {} };
const key = (id: string, suffix: string): string => `handover:{${id}}:${suffix}`;

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

interface Party {
  manager: RedlockManager;
  clients: Scripted[];
  acquire(id: string, ttlMs?: number, waitTimeoutMs?: number): Promise<Lock>;
}

async function party(nodes: RedisNode[]): Promise<Party> {
  const clients = nodes.map(nodeClient);
  await Promise.all(clients.map((c) => c.connect()));
  const manager = new RedlockManager({
    nodes: clients.map((client, i) => ({ client, name: `127.0.0.1:${nodes[i]?.port}` })),
    key,
    notify: () => {},
    commandTimeout: 1000,
    logger: silent,
  });
  return {
    manager,
    clients: clients.map(defineScripts),
    acquire: (id, ttlMs = 10_000, waitTimeoutMs = 10_000) =>
      manager.acquire(id, { ttlMs, waitTimeoutMs }),
  };
}

async function closeParty(p: Party): Promise<void> {
  await p.manager.close();
  for (const c of p.clients) c.disconnect();
}

/** EVAL/EVALSHA calls a node ran since its stats were reset. */
async function scriptCalls(admin: Redis): Promise<number> {
  const info = await admin.info("commandstats");
  let calls = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) calls += Number(m[2]);
  return calls;
}

/** The node clock in microseconds, as the scripts read it. */
async function nodeMicros(admin: Redis): Promise<number> {
  const [s, us] = await admin.time();
  return Number(s) * 1_000_000 + Number(us);
}

function queued(admins: Redis[], id: string, n: number): Promise<void> {
  return Promise.all(
    admins.map((a) => expect.poll(() => a.zcard(key(id, "queue")), { timeout: 5000 }).toBe(n)),
  ).then(() => {});
}

/**
 * Spies the acquire attempts a waiter of `p` sends to its first node, and waits until `n` of them
 * came back: the waiter's next retry is then at least 25 * 2^(n - 1) ms away, so a grant that
 * comes before it came without one.
 */
function attempts(p: Party) {
  const spy = vi.spyOn(p.clients[0] as Scripted, "mssLockAcquire");
  return {
    count: () => spy.mock.calls.length,
    async waitFor(n: number): Promise<void> {
      await expect.poll(() => spy.mock.calls.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(n);
      await Promise.resolve(spy.mock.results[n - 1]?.value).catch(() => {});
    },
  };
}

describe.each([1, 3])("hand-over, %i node(s)", (count) => {
  let nodes: RedisNode[] = [];
  let admins: Redis[] = [];
  let a: Party;
  let b: Party;

  beforeAll(async () => {
    nodes = await startRedisNodes(count);
    admins = nodes.map(nodeClient);
    await Promise.all(admins.map((c) => c.connect()));
    [a, b] = await Promise.all([party(nodes), party(nodes)]);
  });
  afterAll(async () => {
    await Promise.all([a, b].filter(Boolean).map(closeParty));
    for (const c of admins) c.disconnect();
    await Promise.all(nodes.map((n) => n.stop()));
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("a waiter gets the lock from the release script, without an acquire round trip", async () => {
    const id = `rt-${randomUUID()}`;
    const held = await a.acquire(id);
    const sent = attempts(b);
    const waiting = b.acquire(id);
    await sent.waitFor(2);
    await queued(admins, id, 1);
    await Promise.all(admins.map((c) => c.config("RESETSTAT")));
    const floor = await nodeMicros(admins[0] as Redis);
    await held.release();
    const lock = await waiting;
    expect(sent.count()).toBe(2);
    // One script per node: the release. No acquire, and no write-back of the token either (each
    // node stored its proposal, all above the releaser's token: the smallest is on a quorum).
    let calls = 0;
    for (const admin of admins) calls += await scriptCalls(admin);
    expect(calls).toBe(count);
    expect(lock.fencingToken).toBeGreaterThan(held.fencingToken);
    expect(lock.fencingToken).toBeGreaterThanOrEqual(floor);
    expect(lock.signal.aborted).toBe(false);
    expect(lock.expiresAt).toBeGreaterThan(Date.now());
    for (const admin of admins) expect(await admin.zcard(key(id, "queue"))).toBe(0);
    // Ours alone: nobody else gets it until we release it.
    await expect(a.acquire(id, 10_000, 0)).rejects.toMatchObject({ code: "ERR_LOCK_TIMEOUT" });
    await lock.release();
    for (const admin of admins) expect(await admin.exists(key(id, "lock"))).toBe(0);
    const next = await a.acquire(id, 10_000, 0);
    await next.release();
  });

  it("fencing tokens strictly increase across a chain of hand-overs", async () => {
    const id = `chain-${randomUUID()}`;
    const tokens: number[] = [];
    let acquires = 0;
    const parties = [a, b];
    let holder = await a.acquire(id);
    tokens.push(holder.fencingToken);
    for (let i = 1; i <= 20; i++) {
      const next = parties[i % 2] as Party;
      const sent = attempts(next);
      const waiting = next.acquire(id);
      await sent.waitFor(2);
      await queued(admins, id, 1);
      await holder.release();
      holder = await waiting;
      acquires += sent.count() - 2;
      vi.restoreAllMocks();
      tokens.push(holder.fencingToken);
    }
    await holder.release();
    expect(acquires).toBe(0);
    for (let i = 1; i < tokens.length; i++)
      expect(tokens[i] as number).toBeGreaterThan(tokens[i - 1] as number);
  });

  it("a waiter that timed out is skipped: the next one gets the lock", async () => {
    const id = `skip-${randomUUID()}`;
    const held = await a.acquire(id);
    const gaveUp = b.acquire(id, 10_000, 1500);
    await queued(admins, id, 1);
    const c = await party(nodes);
    try {
      const waiting = c.acquire(id);
      await queued(admins, id, 2);
      await expect(gaveUp).rejects.toMatchObject({ code: "ERR_LOCK_TIMEOUT" });
      await queued(admins, id, 1);
      await held.release();
      const lock = await waiting;
      expect(lock.fencingToken).toBeGreaterThan(held.fencingToken);
      await lock.release();
    } finally {
      await closeParty(c);
    }
  });

  it("a hand-over is a short lease, renewed to the full ttl if the holder keeps the lock", async () => {
    const id = `lease-${randomUUID()}`;
    const held = await a.acquire(id);
    const waiting = b.acquire(id, 20_000);
    await queued(admins, id, 1);
    await held.release();
    const lock = await waiting;
    // The lease of a hand-over is what a queue ticket lives (2 s + commandTimeout here).
    expect(lock.expiresAt - Date.now()).toBeLessThanOrEqual(3000);
    for (const admin of admins) expect(await admin.pttl(key(id, "lock"))).toBeLessThanOrEqual(3000);
    await expect
      .poll(() => lock.expiresAt - Date.now(), { timeout: 5000, interval: 100 })
      .toBeGreaterThan(15_000);
    for (const admin of admins) expect(await admin.pttl(key(id, "lock"))).toBeGreaterThan(15_000);
    expect(lock.signal.aborted).toBe(false);
    await lock.release();
  });

  if (count === 3) {
    it("with one node down, the quorum of hand-overs still grants", async () => {
      const id = `down-${randomUUID()}`;
      await nodes[2]?.kill();
      try {
        const live = admins.slice(0, 2);
        const held = await a.acquire(id);
        const sent = attempts(b);
        const waiting = b.acquire(id);
        await sent.waitFor(2);
        await queued(live, id, 1);
        await held.release();
        const lock = await waiting;
        expect(sent.count()).toBe(2);
        expect(lock.fencingToken).toBeGreaterThan(held.fencingToken);
        for (const admin of live) expect(await admin.get(key(id, "lock"))).not.toBeNull();
        await lock.release();
        for (const admin of live) expect(await admin.exists(key(id, "lock"))).toBe(0);
      } finally {
        await nodes[2]?.restart();
      }
    });
  }
});

describe("hand-over scripts", () => {
  let node: RedisNode;
  let client: Scripted;
  let subscriber: Redis;
  beforeAll(async () => {
    [node] = (await startRedisNodes(1)) as [RedisNode];
    client = defineScripts(new Redis(node.port, node.host));
    subscriber = new Redis(node.port, node.host);
  });
  afterAll(async () => {
    client?.disconnect();
    subscriber?.disconnect();
    await node?.stop();
  });

  const ticket = (): string => randomBytes(20).toString("hex");

  function enqueue(id: string, t: string, score: number, hbMs: number): Promise<[number, number]> {
    const k = keysOf(key, id);
    return client.mssLockAcquire(
      k.lock,
      k.fence,
      k.queue,
      k.hb,
      k.grant,
      t,
      10_000,
      t,
      score,
      hbMs,
      "1",
      "1000.000",
      5000,
    );
  }

  it("a ticket that leaves after the lock was handed to it hands it on; a stale ticket is skipped", async () => {
    const id = `gone-${randomUUID()}`;
    const k = keysOf(key, id);
    const messages: string[] = [];
    subscriber.on("message", (_channel: string, message: string) => messages.push(message));
    await subscriber.subscribe(k.chan);
    const owner = ticket();
    expect((await enqueue(id, owner, 1, 10_000))[0]).toBe(1);
    const [stale, gone, next] = [ticket(), ticket(), ticket()];
    expect((await enqueue(id, stale, 2, 10_000))[0]).toBe(0);
    expect((await enqueue(id, gone, 3, 10_000))[0]).toBe(0);
    expect((await enqueue(id, next, 4, 10_000))[0]).toBe(0);
    // The stale ticket's process stopped refreshing it: its heartbeat deadline passed.
    await client.hset(k.hb, stale, 0);
    const release = (value: string) =>
      client.mssLockRelease(k.lock, k.queue, k.hb, k.grant, k.fence, value, k.chan);
    const dequeue = (t: string) =>
      client.mssLockDequeue(k.lock, k.queue, k.hb, k.grant, k.fence, t, k.chan);
    expect(await release(owner)).toBe(1);
    expect(await client.get(k.lock)).toBe(gone);
    // The waiter gave up just after: its dequeue gives the lock to the next ticket.
    expect(await dequeue(gone)).toBe(1);
    expect(await client.get(k.lock)).toBe(next);
    expect(await client.pttl(k.lock)).toBeLessThanOrEqual(5000);
    expect(await client.zcard(k.queue)).toBe(0);
    await expect.poll(() => messages.length).toBe(2);
    const [toGone, toNext] = messages.map((m) => m.split(" "));
    expect(toGone?.slice(0, 3)).toEqual(["h", gone, "1000.000"]);
    expect(toNext?.slice(0, 3)).toEqual(["h", next, "1000.000"]);
    expect(Number(toNext?.[4])).toBeGreaterThan(Number(toGone?.[4]));
    expect(await client.get(k.fence)).toBe(toNext?.[4]);
    // Only the holder's value releases; nobody waits, so the key is gone.
    expect(await release(gone)).toBe(0);
    expect(await release(next)).toBe(1);
    expect(await client.exists(k.lock)).toBe(0);
  });
});

describe("hand-over to the releaser's own next waiter", () => {
  let node: RedisNode;
  let client: Scripted;
  beforeAll(async () => {
    [node] = (await startRedisNodes(1)) as [RedisNode];
    client = defineScripts(new Redis(node.port, node.host));
  });
  afterAll(async () => {
    client?.disconnect();
    await node?.stop();
  });

  it("passes over the head once when the releaser's next waiter is second in line", async () => {
    const k = keysOf(key, `pass-${randomUUID()}`);
    const acquire = (t: string, score: number) =>
      client.mssLockAcquire(
        k.lock,
        k.fence,
        k.queue,
        k.hb,
        k.grant,
        t,
        10_000,
        t,
        score,
        10_000,
        "1",
        "1.000",
        5000,
      );
    const release = (value: string, next: string) =>
      client.mssLockRelease(k.lock, k.queue, k.hb, k.grant, k.fence, value, k.chan, 1, next);
    const [holder, head, second, third] = ["holder", "head", "second", "third"].map(
      (name) => `${name}-${randomBytes(8).toString("hex")}`,
    ) as [string, string, string, string];
    expect((await acquire(holder, 1))[0]).toBe(1);
    for (const [t, score] of [
      [head, 2],
      [second, 3],
      [third, 4],
    ] as const)
      expect((await acquire(t, score))[0]).toBe(0);
    // Second in line and named by the releaser: it goes first, the head is passed over once.
    expect(await release(holder, second)).toBe(1);
    expect(await client.get(k.lock)).toBe(second);
    // Now "third" is second in line and named, but the head was passed over already.
    expect(await release(second, third)).toBe(1);
    expect(await client.get(k.lock)).toBe(head);
    expect(await client.hlen(k.hb)).toBe(1);
    // A named waiter further back never goes first.
    expect(await release(head, "nobody")).toBe(1);
    expect(await client.get(k.lock)).toBe(third);
    expect(await release(third, "")).toBe(1);
    expect(await client.exists(k.lock, k.queue, k.hb, k.grant)).toBe(0);
  });
});

describe("memory backend", () => {
  it("hands the lock straight to the next waiter, skipping one that timed out", async () => {
    const manager = new MemoryLockManager({ notify: () => {} });
    try {
      const held = await manager.acquire("m", { ttlMs: 10_000, waitTimeoutMs: 0 });
      const gaveUp = manager.acquire("m", { ttlMs: 10_000, waitTimeoutMs: 50 });
      const waiting = manager.acquire("m", { ttlMs: 10_000, waitTimeoutMs: 10_000 });
      await expect(gaveUp).rejects.toMatchObject({ code: "ERR_LOCK_TIMEOUT" });
      await held.release();
      const lock = await waiting;
      expect(lock.fencingToken).toBeGreaterThan(held.fencingToken);
      await lock.release();
    } finally {
      await manager.close();
    }
  });
});
