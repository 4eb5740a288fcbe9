import type { Lock, SessionStore } from "../../src/index.js";
import type { RedisNode } from "../../test/support/redis.js";
import type { Experiment } from "../experiment.js";
import { frozenFor, sleep } from "../faults.js";
import {
  checkGrants,
  DECREASED,
  type Grant,
  monotonicNow,
  OVERLAPS,
  REPEATED,
  watchLease,
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

/**
 * One lock and the state its holders increment: read, yield, write back, as a careless caller
 * would. Short holders take "x"; long holders take "y" so they do not starve the short ones.
 */
interface Shared {
  resource: string;
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
        () => store.acquireLock(shared.resource, { ttl: LEASE_MS, waitTimeout: WAIT_MS }),
        WAIT_MS,
      );
    } catch (err) {
      probe.expectCodes(`acquireLock by ${holder}`, err, LOCK_CODES);
      await sleep(20);
      continue;
    }
    const start = monotonicNow();
    const leaseEnd = watchLease(lock);
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
      leaseEnd: leaseEnd(),
    });
    await probe
      .call(`release by ${holder}`, () => lock.release())
      .catch((err: unknown) => {
        probe.expectCodes(`release by ${holder}`, err, LOCK_CODES);
      });
  }
}

/** Past 2/3 of the lease, so withLock extends it while nodes fail. */
const LONG_HOLD_MS = 2400;
const STEP_MS = 200;

/** Holds the lock through withLock for most of a lease, incrementing while the lease holds. */
async function holdLong(store: SessionStore, holder: string, shared: Shared, probe: Probe) {
  const work = async (lock: Lock): Promise<void> => {
    const start = monotonicNow();
    const leaseEnd = watchLease(lock);
    for (let t = 0; t < LONG_HOLD_MS && !lock.signal.aborted; t += STEP_MS) {
      const read = shared.value;
      await sleep(STEP_MS);
      if (lock.signal.aborted) break;
      shared.value = read + 1;
      shared.writes++;
    }
    const end = monotonicNow();
    shared.grants.push({ holder, token: lock.fencingToken, start, end, leaseEnd: leaseEnd() });
  };
  while (shared.running) {
    await probe
      .call(
        `withLock by ${holder}`,
        () => store.withLock(shared.resource, work, { ttl: LEASE_MS, waitTimeout: WAIT_MS }),
        // Its own wait, its work and its release are allowed on top of one command.
        WAIT_MS + LONG_HOLD_MS + probe.commandTimeoutMs,
      )
      .catch(async (err: unknown) => {
        probe.expectCodes(`withLock by ${holder}`, err, LOCK_CODES);
        await sleep(20);
      });
  }
}

/**
 * Nine contenders in three stores on three lock nodes (three hold long enough to extend), while one node is frozen, another killed
 * and restarted empty, and a third frozen: no two holders inside valid leases at once, tokens
 * strictly increasing in grant order.
 */
export const experiment: Experiment = {
  figures: [REPEATED, DECREASED, OVERLAPS, LOST_INCREMENTS],
  async run(ctx, probe) {
    const deployment = await LockDeployment.start(ctx.commandTimeoutMs);
    const short: Shared = { resource: "x", value: 0, writes: 0, grants: [], running: true };
    const long: Shared = { resource: "y", value: 0, writes: 0, grants: [], running: true };
    const scale = ctx.quick ? 0.5 : 1;
    let contenders: Promise<void>[] = [];
    try {
      const stores = [];
      for (let i = 0; i < 3; i++) stores.push(await deployment.store(LEASE_MS));
      contenders = stores.flatMap((store, i) => [
        contend(store, `s${i}a`, short, probe),
        contend(store, `s${i}b`, short, probe),
        holdLong(store, `s${i}long`, long, probe),
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
      short.running = false;
      long.running = false;
      await Promise.all(contenders);
      await deployment.stop();
    }
    for (const shared of [short, long]) {
      for (const f of checkGrants(shared.grants)) probe.violation(f.figure, f.detail);
      if (shared.value !== shared.writes) {
        const { resource, writes, value } = shared;
        probe.violation(
          LOST_INCREMENTS,
          `${resource}: ${writes} writes left the value at ${value}`,
        );
      }
    }
  },
};
