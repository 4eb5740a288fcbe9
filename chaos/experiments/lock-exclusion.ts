import type { Lock, SessionStore } from "../../src/index.js";
import type { RedisNode } from "../../test/support/redis.js";
import type { Experiment } from "../experiment.js";
import { frozenFor, sleep } from "../faults.js";
import {
  checkGrants,
  DECREASED,
  type Grant,
  leaseEndOf,
  monotonicNow,
  OVERLAPS,
  REPEATED,
} from "../grants.js";
import { LockDeployment } from "../lock-nodes.js";
import type { Probe } from "../probe.js";

// Well above commandTimeout: an attempt that waits out a frozen node must still leave validity.
const LEASE_MS = 3000;
const WAIT_MS = 4000;
const LOST_INCREMENTS = "increments lost under the lock";
const LOCK_CODES = [
  "ERR_LOCK_TIMEOUT",
  "ERR_LOCK_QUORUM",
  "ERR_LOCK_LOST",
  "ERR_BACKEND_UNAVAILABLE",
] as const;

/** Shared state the holders increment: read, yield, write back, as a careless caller would. */
interface Shared {
  value: number;
  writes: number;
  grants: Grant[];
  running: boolean;
}

async function contend(store: SessionStore, holder: string, shared: Shared, probe: Probe) {
  while (shared.running) {
    let lock: Lock;
    try {
      lock = await probe.call(
        `acquireLock by ${holder}`,
        () => store.acquireLock("x", { ttl: LEASE_MS, waitTimeout: WAIT_MS }),
        WAIT_MS,
      );
    } catch (err) {
      probe.expectCodes(`acquireLock by ${holder}`, err, LOCK_CODES);
      await sleep(20);
      continue;
    }
    const start = monotonicNow();
    const read = shared.value;
    await sleep(1 + Math.random() * 15);
    // The check a careful holder makes before writing (the fencing token is the real guard).
    if (!lock.signal.aborted) {
      shared.value = read + 1;
      shared.writes++;
    }
    shared.grants.push({
      holder,
      token: lock.fencingToken,
      start,
      end: monotonicNow(),
      leaseEnd: leaseEndOf(lock.expiresAt),
    });
    await probe
      .call(`release by ${holder}`, () => lock.release())
      .catch((err: unknown) => {
        probe.expectCodes(`release by ${holder}`, err, LOCK_CODES);
      });
  }
}

/**
 * Six contenders in three stores on three lock nodes, while one node is frozen, another killed
 * and restarted empty, and a third frozen: no two holders inside valid leases at once, tokens
 * strictly increasing in grant order.
 */
export const experiment: Experiment = {
  figures: [REPEATED, DECREASED, OVERLAPS, LOST_INCREMENTS],
  async run(ctx, probe) {
    const deployment = await LockDeployment.start(ctx.commandTimeoutMs);
    const shared: Shared = { value: 0, writes: 0, grants: [], running: true };
    const scale = ctx.quick ? 0.5 : 1;
    let contenders: Promise<void>[] = [];
    try {
      const stores = [];
      for (let i = 0; i < 3; i++) stores.push(await deployment.store(LEASE_MS));
      contenders = stores.flatMap((store, i) => [
        contend(store, `s${i}a`, shared, probe),
        contend(store, `s${i}b`, shared, probe),
      ]);
      const [l1, l2, l3] = deployment.locks as [RedisNode, RedisNode, RedisNode];
      await sleep(1000 * scale);
      await frozenFor(l1, 2000 * scale);
      await sleep(1000 * scale);
      await l2.kill();
      await sleep(1000 * scale);
      await l2.restart();
      await sleep(500 * scale);
      await frozenFor(l3, 1500 * scale);
      await sleep(1500 * scale);
    } finally {
      shared.running = false;
      await Promise.all(contenders);
      await deployment.stop();
    }
    for (const f of checkGrants(shared.grants)) probe.violation(f.figure, f.detail);
    if (shared.value !== shared.writes) {
      probe.violation(LOST_INCREMENTS, `${shared.writes} writes left the value at ${shared.value}`);
    }
  },
};
