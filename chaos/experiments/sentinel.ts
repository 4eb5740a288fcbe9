import { createRedisSessionStore, type SessionStoreOptions } from "../../src/index.js";
import {
  type RedisNode,
  type SentinelHandle,
  startRedisSentinel,
} from "../../test/support/redis.js";
import { adminCall } from "../cluster-admin.js";
import type { Experiment } from "../experiment.js";
import { freeze, silent, sleep, thaw, until } from "../faults.js";
import { DUPLICATED, LOST, STALE, UNVERIFIED } from "../history.js";
import { Writers } from "../writers.js";

const ZOMBIE_WINDOW_MS = 2000;
const NO_FAILOVER = "failovers not observed";

function promoted(sentinel: SentinelHandle): Promise<boolean> {
  const ask = async () => {
    const addr = await adminCall(sentinel.sentinels[0] as RedisNode, [
      "SENTINEL",
      "GET-MASTER-ADDR-BY-NAME",
      sentinel.masterName,
    ]);
    return Array.isArray(addr) && Number(addr[1]) === sentinel.replica.port;
  };
  return until("replica promotion", 20_000, ask).then(
    () => true,
    () => false,
  );
}

/**
 * Sentinel: the master is frozen until Sentinel promotes the replica; writers go on against the
 * new master, stop, and the frozen master is killed (so only the client could still deliver an
 * old write). Then the old master restarts empty and rejoins as a replica while writers run.
 */
export const experiment: Experiment = {
  figures: [LOST, STALE, DUPLICATED, UNVERIFIED, NO_FAILOVER],
  async run(ctx, probe) {
    const sentinel = await startRedisSentinel();
    const options: SessionStoreOptions = {
      redis: {
        sentinels: sentinel.sentinels.map((s) => ({ host: s.host, port: s.port })),
        name: sentinel.masterName,
      },
      commandTimeout: ctx.commandTimeoutMs,
      instrumentation: false,
      logger: silent,
    };
    const store = await createRedisSessionStore(options);
    const writers = new Writers(store, probe, { writers: 8, counters: 2, prefix: "se:" });
    let frozen: number | undefined;
    try {
      writers.start();
      await sleep(ctx.quick ? 500 : 1000);
      frozen = freeze(sentinel.master);
      if (!(await promoted(sentinel))) probe.violation(NO_FAILOVER, `port ${sentinel.master.port}`);
      await sleep(ctx.quick ? 500 : 1000);
      await writers.stop();
      await sentinel.master.kill();
      frozen = undefined;
      await sleep(ZOMBIE_WINDOW_MS);
      const reader = await createRedisSessionStore(options);
      try {
        await writers.verify(reader, 10_000);
        writers.start();
        await sentinel.master.restart();
        await sleep(ctx.quick ? 1500 : 3000);
        await writers.stop();
        await sleep(ZOMBIE_WINDOW_MS);
        await writers.verify(reader, 10_000);
      } finally {
        await reader.disconnect();
      }
    } finally {
      if (frozen !== undefined) thaw(frozen);
      await writers.stop();
      await store.disconnect();
      await sentinel.stop();
    }
  },
};
