import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore, type SessionStore } from "../src/index.js";
import { ownersOf, waitReplicated } from "./support/faults-cluster.js";
import { type RedisClusterHandle, type RedisNode, startRedisCluster } from "./support/redis.js";

const COMMAND_TIMEOUT = 1000;
/**
 * The master stays frozen for FREEZE_MS (cluster-node-timeout is 2 s in the harness, plus the
 * election), or longer until its replica took over its slots and every writer on it has been
 * acknowledged by the new master; at most MAX_FREEZE_MS.
 */
const FREEZE_MS = 6000;
const MAX_FREEZE_MS = 16_000;
const PREFIX = "mcp:session:";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Writer {
  id: string;
  lastAcked: number;
  /** Highest seq acknowledged before the freeze. */
  ackedBeforeFreeze: number;
  /** When the last acknowledgement came (performance.now()). */
  ackedAt: number;
  failed: number;
  /** The seqs whose write rejected (indeterminate writes). */
  failedSeqs: Set<number>;
}

describe("Redis Cluster: a write that failed for its caller never lands after a later acknowledged one", () => {
  let cluster: RedisClusterHandle;
  let store: SessionStore;
  let victim: RedisNode;
  let onVictim: string[] = [];
  let elsewhere: string[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
    store = await createRedisSessionStore({
      redis: { clusterNodes: cluster.seeds },
      commandTimeout: COMMAND_TIMEOUT,
      instrumentation: false,
      logger: { info() {}, warn() {}, error() {} },
    });
    // Writers on the master that will be frozen, and more on the others: while the frozen master
    // is marked failed and before its replica takes over, every master answers CLUSTERDOWN, the
    // client retries those writes after their callers gave up, and some land late. Without write
    // fencing about half the runs end with stale keys; more writers make that likelier.
    const ids = Array.from({ length: 300 }, (_, i) => `w-${i}`);
    const owners = await ownersOf(
      cluster,
      ids.map((id) => `${PREFIX}{${id}}`),
    );
    victim = owners[0] as RedisNode;
    onVictim = ids.filter((_, i) => owners[i] === victim).slice(0, 16);
    elsewhere = ids.filter((_, i) => owners[i] !== victim).slice(0, 48);
  }, 120_000);

  afterAll(async () => {
    if (victim?.pid !== undefined) process.kill(victim.pid, "SIGCONT");
    await store?.disconnect();
    await cluster?.stop();
  });

  it("keeps every key at or above its last acknowledged seq across a master freeze and failover", async () => {
    let running = true;
    let frozen = false;
    const writers: Writer[] = [...onVictim, ...elsewhere].map((id) => ({
      id,
      lastAcked: 0,
      ackedBeforeFreeze: 0,
      ackedAt: 0,
      failed: 0,
      failedSeqs: new Set<number>(),
    }));
    const loops = writers.map(async (w) => {
      for (let seq = 1; running; seq++) {
        try {
          await store.setSession(w.id, seq);
          w.lastAcked = seq;
          w.ackedAt = performance.now();
          if (!frozen) w.ackedBeforeFreeze = seq;
        } catch (err) {
          expect((err as { code?: string }).code).toBe("ERR_BACKEND_UNAVAILABLE");
          w.failed++;
          w.failedSeqs.add(seq);
          await sleep(10);
        }
      }
    });
    await sleep(500);
    await waitReplicated(victim);
    frozen = true;
    const pid = victim.pid as number;
    process.kill(pid, "SIGSTOP");
    let failoverAt = Number.POSITIVE_INFINITY;
    try {
      const victims = writers.filter((w) => onVictim.includes(w.id));
      const start = performance.now();
      const key = `${PREFIX}{${onVictim[0]}}`;
      while (performance.now() - start < MAX_FREEZE_MS) {
        if (failoverAt === Number.POSITIVE_INFINITY) {
          const [owner] = await ownersOf(cluster, [key], victim).catch(() => [victim]);
          if (owner !== victim) failoverAt = performance.now();
        } else if (
          performance.now() - start >= FREEZE_MS &&
          victims.every((w) => w.ackedAt > failoverAt)
        ) {
          break;
        }
        await sleep(100);
      }
      running = false;
      await Promise.all(loops);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    // Whatever the client still holds (offline queue, failover retries) is sent now.
    await sleep(3000);

    const reader = new Cluster(cluster.seeds, { lazyConnect: true });
    try {
      await reader.connect();
      const stale: string[] = [];
      for (const w of writers) {
        const value = Number(JSON.parse((await reader.hget(`${PREFIX}{${w.id}}`, "d")) ?? "0"));
        if (value < w.lastAcked)
          stale.push(
            `${w.id}${onVictim.includes(w.id) ? "(victim)" : ""}: ${value} < acked ${w.lastAcked} before ${w.ackedBeforeFreeze} failed ${w.failed}${w.failedSeqs.has(value) ? " (a rejected write)" : ""}`,
          );
      }
      // The experiment only means something if writes failed during the freeze and writers on
      // the frozen master were acknowledged again by its promoted replica.
      const failed = writers.reduce((n, w) => n + w.failed, 0);
      expect(failed).toBeGreaterThan(0);
      expect(failoverAt, "the replica did not take over in time").toBeLessThan(Infinity);
      const served = writers.filter((w) => onVictim.includes(w.id) && w.ackedAt > failoverAt);
      expect(served.length).toBe(onVictim.length);
      expect(stale).toEqual([]);
    } finally {
      reader.disconnect();
    }
  }, 30_000);
});
