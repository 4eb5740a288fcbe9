import { createRedisSessionStore } from "../../src/index.js";
import { startRedis } from "../../test/support/redis.js";
import type { Experiment } from "../experiment.js";
import { frozenFor, silent, sleep } from "../faults.js";
import { DUPLICATED, LOST, STALE, UNVERIFIED } from "../history.js";
import { Writers } from "../writers.js";

/**
 * Standalone Redis with an fsync-always AOF (so an acknowledged write survives kill -9): writers
 * run through a SIGSTOP freeze, then a kill -9 and a restart.
 */
export const experiment: Experiment = {
  figures: [LOST, STALE, DUPLICATED, UNVERIFIED],
  async run(ctx, probe) {
    const node = await startRedis({ args: ["--appendonly", "yes", "--appendfsync", "always"] });
    const options = {
      redisUrl: node.url,
      commandTimeout: ctx.commandTimeoutMs,
      instrumentation: false as const,
      logger: silent,
    };
    const store = await createRedisSessionStore(options);
    const writers = new Writers(store, probe, { writers: 8, counters: 2, prefix: "sa:" });
    try {
      writers.start();
      await sleep(ctx.quick ? 500 : 1000);
      await frozenFor(node, ctx.quick ? 1500 : 3000);
      await sleep(ctx.quick ? 500 : 1000);
      await node.kill();
      await sleep(500);
      await node.restart();
      await sleep(ctx.quick ? 1000 : 2000);
      await writers.stop();
      const reader = await createRedisSessionStore(options);
      try {
        await writers.verify(reader, 10_000);
      } finally {
        await reader.disconnect();
      }
    } finally {
      await writers.stop();
      await store.disconnect();
      await node.stop();
    }
  },
};
