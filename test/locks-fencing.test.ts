/**
 * Fencing tokens when lock nodes lose their data: a node restarted without persistence (or
 * flushed) forgets its counter, yet the next token must still be larger than every earlier one.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MemoryLockManager } from "../src/locks/memory.js";
import { RedlockManager } from "../src/locks/redlock.js";
import type { LockManager, NotifyObservers } from "../src/locks/types.js";
import { KeyLayout } from "../src/stores/keys.js";
import type { Lock } from "../src/types.js";
import { type RedisNode, startRedisNodes } from "./support/redis.js";

const layout = new KeyLayout("fencetest:");
const silent = { info: () => {}, warn: () => {}, error: () => {} };
const notify = (() => {}) as NotifyObservers;
const COMMAND_TIMEOUT_MS = 300;

function nodeClient(node: RedisNode): Redis {
  const client = new Redis(node.port, node.host, {
    commandTimeout: COMMAND_TIMEOUT_MS,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 50,
  });
  client.on("error", () => {});
  return client;
}

async function ready(clients: Redis[]): Promise<void> {
  await Promise.all(
    clients.map((c) =>
      c.status === "ready" ? undefined : new Promise((resolve) => c.once("ready", resolve)),
    ),
  );
}

async function manager(nodes: RedisNode[], clients: Redis[]): Promise<RedlockManager> {
  const own = nodes.map(nodeClient);
  clients.push(...own);
  await ready(own);
  return new RedlockManager({
    nodes: own.map((client, i) => ({ client, name: `127.0.0.1:${nodes[i]?.port}` })),
    key: (id, suffix) => layout.key(id, suffix),
    notify,
    commandTimeout: COMMAND_TIMEOUT_MS,
    logger: silent,
  });
}

function once(m: LockManager, id: string, waitTimeoutMs = 0): Promise<Lock> {
  return m.acquire(id, { ttlMs: 10_000, waitTimeoutMs });
}

function freeze(node: RedisNode | undefined, sig: "SIGSTOP" | "SIGCONT"): void {
  if (node?.pid !== undefined) process.kill(node.pid, sig);
}

describe("fencing tokens across lock nodes restarted empty", () => {
  let nodes: RedisNode[] = [];
  const clients: Redis[] = [];
  const managers: LockManager[] = [];

  beforeAll(async () => {
    nodes = await startRedisNodes(3);
  });
  afterEach(async () => {
    for (const node of nodes) freeze(node, "SIGCONT");
    await Promise.all(managers.splice(0).map((m) => m.close()));
    for (const c of clients.splice(0)) c.disconnect();
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("3 nodes: a minority restarted empty between two grants does not repeat a token", async () => {
    const [l1, l2, l3] = nodes;
    const m = await manager(nodes, clients);
    managers.push(m);
    const id = `restart-${randomUUID()}`;
    const tokens: number[] = [];

    const first = await once(m, id);
    tokens.push(first.fencingToken);
    await first.release();

    // L2 frozen: L1 + L3 grant and remember the second token, L2 never hears of it.
    freeze(l2, "SIGSTOP");
    const second = await once(m, id);
    tokens.push(second.fencingToken);
    await second.release().catch(() => {}); // L2 cannot confirm: the quorum still released

    // L1 loses its counter, L3 goes away, L2 comes back: L1 + L2 are the next quorum.
    await l1?.kill();
    await l1?.restart();
    await l3?.kill();
    freeze(l2, "SIGCONT");
    const third = await once(m, id, 10_000);
    tokens.push(third.fencingToken);
    await third.release().catch(() => {});
    await l3?.restart();

    expect(tokens[1]).toBeGreaterThan(tokens[0] as number);
    expect(tokens[2]).toBeGreaterThan(tokens[1] as number);
    for (const t of tokens) expect(Number.isSafeInteger(t)).toBe(true);
  });

  it("1 node: the node restarted empty does not repeat a token", async () => {
    const [l1] = nodes;
    const m = await manager([l1 as RedisNode], clients);
    managers.push(m);
    const id = `single-${randomUUID()}`;
    const before = await once(m, id);
    await before.release();
    await l1?.kill();
    await l1?.restart();
    const after = await once(m, id, 10_000);
    await after.release();
    expect(after.fencingToken).toBeGreaterThan(before.fencingToken);
    expect(Number.isSafeInteger(after.fencingToken)).toBe(true);
  });

  for (const count of [1, 3]) {
    it(`${count} node(s): tokens strictly increase while nodes lose their data at random (property)`, async () => {
      const used = nodes.slice(0, count);
      const parties = [await manager(used, clients), await manager(used, clients)];
      managers.push(...parties);
      const admin = used.map(nodeClient);
      clients.push(...admin);
      await ready(admin);
      const id = `prop-${randomUUID()}`;
      let last = 0;
      let grants = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.oneof(
              fc.record({
                op: fc.constant("acquire" as const),
                party: fc.integer({ min: 0, max: 1 }),
              }),
              fc.record({ op: fc.constant("release" as const) }),
              fc.record({
                op: fc.constant("flush" as const),
                node: fc.integer({ min: 0, max: count - 1 }),
              }),
            ),
            { minLength: 1, maxLength: 10 },
          ),
          async (ops) => {
            const held: Lock[] = [];
            for (const step of ops) {
              if (step.op === "flush") {
                // Same as a restart without persistence: lock, fence and queue keys are gone.
                await admin[step.node]?.flushall();
              } else if (step.op === "release") {
                await Promise.all(held.splice(0).map((l) => l.release().catch(() => {})));
              } else {
                const lock = await once(parties[step.party] as LockManager, id).catch(
                  () => undefined,
                );
                if (lock === undefined) continue;
                held.push(lock);
                grants += 1;
                // Every grant, even one a flush made possible while the lock was held, is newer.
                expect(lock.fencingToken).toBeGreaterThan(last);
                expect(Number.isSafeInteger(lock.fencingToken)).toBe(true);
                last = lock.fencingToken;
              }
            }
            await Promise.all(held.map((l) => l.release().catch(() => {})));
          },
        ),
        { numRuns: 30 },
      );
      expect(grants).toBeGreaterThan(0);
    });
  }
});

describe("fencing tokens of the memory backend", () => {
  it("tokens start from the clock, so a restarted process continues above its earlier tokens", async () => {
    const a = new MemoryLockManager({ notify });
    const floor = Date.now() * 1000;
    const first = await once(a, "m");
    await first.release();
    await a.close();
    const b = new MemoryLockManager({ notify });
    const second = await once(b, "m");
    await second.release();
    await b.close();
    expect(first.fencingToken).toBeGreaterThanOrEqual(floor);
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(Number.isSafeInteger(second.fencingToken)).toBe(true);
  });
});
