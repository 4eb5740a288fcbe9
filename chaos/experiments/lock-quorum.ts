import type { SessionStore } from "../../src/index.js";
import type { RedisNode } from "../../test/support/redis.js";
import type { Experiment } from "../experiment.js";
import { freeze, thaw } from "../faults.js";
import { checkGrants, DECREASED, OVERLAPS, REPEATED } from "../grants.js";
import { GrantLog, REFUSED } from "../lock-log.js";
import { LockDeployment } from "../lock-nodes.js";
import type { Probe } from "../probe.js";

// Well above commandTimeout: an attempt that waits out a frozen node must still leave validity.
const LEASE_MS = 4000;
const NO_QUORUM_GRANTS = "grants without a quorum";
const WRONG_CODES = "errors other than ERR_LOCK_QUORUM without a quorum";
const NO_START = "stores refused to start with a quorum of lock nodes";

/** With two of three lock nodes dead, every attempt must end in ERR_LOCK_QUORUM. */
async function noQuorum(store: SessionStore, probe: Probe, waitTimeout: number): Promise<void> {
  try {
    const lock = await probe.call(
      "acquireLock without a quorum",
      () => store.acquireLock("q", { ttl: LEASE_MS, waitTimeout }),
      waitTimeout,
    );
    probe.violation(NO_QUORUM_GRANTS, `token ${lock.fencingToken}`);
    await lock.release().catch(() => {});
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== "ERR_LOCK_QUORUM") probe.violation(WRONG_CODES, `${code ?? String(err)}`);
  }
}

/**
 * Three lock nodes: one frozen, then one killed (and a new store starts meanwhile), then two
 * killed, then both restarted empty. Grants while a quorum is up, never without one, and
 * tokens strictly increasing throughout.
 */
export const experiment: Experiment = {
  figures: [REPEATED, DECREASED, OVERLAPS, REFUSED, NO_QUORUM_GRANTS, WRONG_CODES, NO_START],
  async run(ctx, probe) {
    const deployment = await LockDeployment.start(ctx.commandTimeoutMs);
    const log = new GrantLog(probe, "q");
    const [l1, l2, l3] = deployment.locks as [RedisNode, RedisNode, RedisNode];
    const rounds = ctx.quick ? 2 : 4;
    try {
      const store = await deployment.store(LEASE_MS);
      for (let i = 0; i < rounds; i++) await log.grant(store, "all up", LEASE_MS, 0);
      const pid = freeze(l3);
      try {
        for (let i = 0; i < rounds; i++) await log.grant(store, "one frozen", LEASE_MS, 0);
      } finally {
        thaw(pid);
      }
      await l1.kill();
      for (let i = 0; i < rounds; i++) await log.grant(store, "one killed", LEASE_MS, 1000);
      const late = await probe
        .call("a store starting with one lock node down", () => deployment.store(LEASE_MS))
        .catch((err: unknown) => {
          probe.violation(NO_START, (err as { code?: string }).code ?? String(err));
          return undefined;
        });
      if (late) {
        for (let i = 0; i < rounds; i++) await log.grant(late, "new store", LEASE_MS, 1000);
      }
      await l2.kill();
      for (let i = 0; i < rounds; i++) await noQuorum(store, probe, 0);
      await noQuorum(store, probe, 1000);
      await Promise.all([l1.restart(), l2.restart()]);
      // Clients reconnect with backoff: the first grant may wait for that.
      await log.grant(store, "restarted empty", LEASE_MS, 5000);
      for (let i = 0; i < rounds; i++) await log.grant(store, "restarted empty", LEASE_MS, 1000);
    } finally {
      await deployment.stop();
    }
    for (const f of checkGrants(log.grants)) probe.violation(f.figure, f.detail);
  },
};
