import { createRedisSessionStore, type SessionStoreOptions } from "../../src/index.js";
import { type RedisNode, startRedisSentinel } from "../../test/support/redis.js";
import { adminCall } from "../cluster-admin.js";
import type { Experiment } from "../experiment.js";
import { freeze, silent, sleep, thaw, until } from "../faults.js";
import { DUPLICATED, LOST, STALE, UNVERIFIED } from "../history.js";
import { Writers } from "../writers.js";

/**
 * Sentinel: the master is frozen until Sentinel promotes the replica, then killed and restarted
 * (empty: Sentinel turns it into a replica of the new master). Writers run throughout.
 */
export const experiment: Experiment = {
  figures: [LOST, STALE, DUPLICATED, UNVERIFIED, "failovers not observed"],
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
      const promoted = await until("replica promotion", 20_000, async () => {
        const addr = await adminCall(sentinel.sentinels[0] as RedisNode, [
          "SENTINEL",
          "GET-MASTER-ADDR-BY-NAME",
          sentinel.masterName,
        ]);
        return Array.isArray(addr) && Number(addr[1]) === sentinel.replica.port;
      }).then(
        () => true,
        () => false,
      );
      if (!promoted) probe.violation("failovers not observed", `port ${sentinel.master.port}`);
      await sleep(ctx.quick ? 500 : 1000);
      await sentinel.master.kill();
      frozen = undefined;
      await sentinel.master.restart();
      await sleep(ctx.quick ? 1500 : 3000);
      await writers.stop();
      await sleep(1000);
      const reader = await createRedisSessionStore(options);
      try {
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
