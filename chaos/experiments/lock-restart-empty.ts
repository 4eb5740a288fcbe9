import type { RedisNode } from "../../test/support/redis.js";
import type { Experiment } from "../experiment.js";
import { freeze, thaw } from "../faults.js";
import { checkGrants, DECREASED, OVERLAPS, REPEATED } from "../grants.js";
import { GrantLog, REFUSED } from "../lock-log.js";
import { LockDeployment } from "../lock-nodes.js";

// Well above commandTimeout: an attempt that waits out a frozen node must still leave validity.
const LEASE_MS = 4000;
/** A frozen node runs our queued acquire when it resumes: wait out that stale lease. */
const WAIT_MS = 6000;

/**
 * One minority node misses a token (frozen), another restarts empty, and the next quorum is
 * exactly those two: the token must still be above every earlier one. Each round rotates roles.
 */
export const experiment: Experiment = {
  figures: [REPEATED, DECREASED, OVERLAPS, REFUSED],
  async run(ctx, probe) {
    const deployment = await LockDeployment.start(ctx.commandTimeoutMs);
    const log = new GrantLog(probe, "r");
    const nodes = deployment.locks as [RedisNode, RedisNode, RedisNode];
    try {
      const store = await deployment.store(LEASE_MS);
      for (let round = 0; round < (ctx.quick ? 1 : 3); round++) {
        const killed = nodes[round % 3] as RedisNode;
        const missed = nodes[(round + 1) % 3] as RedisNode;
        const third = nodes[(round + 2) % 3] as RedisNode;
        await log.grant(store, `round ${round + 1}: all up`, LEASE_MS, WAIT_MS);
        let pid = freeze(missed);
        try {
          await log.grant(
            store,
            `round ${round + 1}: port ${missed.port} frozen`,
            LEASE_MS,
            WAIT_MS,
          );
        } finally {
          thaw(pid);
        }
        await killed.restart();
        pid = freeze(third);
        try {
          await log.grant(
            store,
            `round ${round + 1}: port ${killed.port} restarted empty, ${third.port} frozen`,
            LEASE_MS,
            WAIT_MS,
          );
        } finally {
          thaw(pid);
        }
      }
    } finally {
      await deployment.stop();
    }
    for (const f of checkGrants(log.grants)) probe.violation(f.figure, f.detail);
  },
};
