import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore, type SessionStore } from "../src/index.js";
import { ownerOf } from "./support/faults-cluster.js";
import {
  type RedisClusterHandle,
  type RedisNode,
  startRedis,
  startRedisCluster,
} from "./support/redis.js";

const COMMAND_TIMEOUT = 1000;
/** Scheduling slack on a loaded 2-core machine; one more commandTimeout would exceed it. */
const MARGIN = 400;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts `updateSession` after `delayMs`; resolves with its outcome and how long it took. */
async function timedUpdate(
  store: SessionStore,
  delayMs: number,
  fn: (n: number | null) => number | Promise<number> = (n) => (n ?? 0) + 1,
): Promise<{ ms: number; code?: string; value?: number }> {
  await sleep(delayMs);
  const start = performance.now();
  try {
    const value = await store.updateSession<number>("q", fn);
    return { ms: performance.now() - start, value };
  } catch (err) {
    return { ms: performance.now() - start, code: (err as { code?: string }).code };
  }
}

describe("queued updateSession calls each answer within commandTimeout of their own start", () => {
  let node: RedisNode;
  let client: Redis;
  let store: SessionStore;
  beforeAll(async () => {
    node = await startRedis();
    // A client passed in: the store bounds every call with its own timer.
    client = new Redis(node.url);
    store = await createRedisSessionStore({
      redis: client,
      commandTimeout: COMMAND_TIMEOUT,
      instrumentation: false,
      logger: { info() {}, warn() {}, error() {} },
    });
  });
  afterAll(async () => {
    if (node?.pid !== undefined) process.kill(node.pid, "SIGCONT");
    await store?.disconnect();
    client?.disconnect();
    await node?.stop();
  });

  it("while Redis is frozen, whatever is queued before them", async () => {
    await store.setSession("q", 0);
    process.kill(node.pid as number, "SIGSTOP");
    let results: Array<{ ms: number; code?: string }>;
    try {
      results = await Promise.all([
        ...Array.from({ length: 5 }, () => timedUpdate(store, 0)),
        timedUpdate(store, 300),
        timedUpdate(store, 700),
      ]);
    } finally {
      process.kill(node.pid as number, "SIGCONT");
    }
    for (const r of results) {
      expect(r.code).toBe("ERR_BACKEND_UNAVAILABLE");
      expect(r.ms, JSON.stringify(results)).toBeLessThan(COMMAND_TIMEOUT + MARGIN);
    }
  });

  it("while Redis answers, a slow fn ahead of them does not make them fail", async () => {
    await sleep(200);
    await store.setSession("q", 0);
    // Eight updates whose fn takes 250 ms each: the last one waits 2 s for the ones ahead of
    // it, yet Redis answers every command at once.
    const slow = async (n: number | null) => {
      await sleep(250);
      return (n ?? 0) + 1;
    };
    const results = await Promise.all(Array.from({ length: 8 }, () => timedUpdate(store, 0, slow)));
    expect(results.map((r) => r.code)).toEqual(Array(8).fill(undefined));
    expect(await store.getSession("q")).toBe(8);
  });
});

describe("queued updateSession calls on a Redis Cluster whose master is frozen", () => {
  let cluster: RedisClusterHandle;
  let store: SessionStore;
  let owner: RedisNode | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster();
    store = await createRedisSessionStore({
      redis: { clusterNodes: cluster.seeds },
      commandTimeout: COMMAND_TIMEOUT,
      instrumentation: false,
      logger: { info() {}, warn() {}, error() {} },
    });
  }, 120_000);
  afterAll(async () => {
    if (owner?.pid !== undefined) process.kill(owner.pid, "SIGCONT");
    await store?.disconnect();
    await cluster?.stop();
  });

  it("each answer within commandTimeout of their own start", async () => {
    await store.setSession("q", 0);
    owner = await ownerOf(cluster, "mcp:session:{q}");
    const pid = owner.pid as number;
    process.kill(pid, "SIGSTOP");
    let results: Array<{ ms: number; code?: string }>;
    try {
      results = await Promise.all([
        ...Array.from({ length: 5 }, () => timedUpdate(store, 0)),
        timedUpdate(store, 400),
      ]);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    for (const r of results) {
      expect(r.code).toBe("ERR_BACKEND_UNAVAILABLE");
      expect(r.ms, JSON.stringify(results)).toBeLessThan(COMMAND_TIMEOUT + MARGIN);
    }
  });
});
