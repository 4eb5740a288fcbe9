import { createRedisSessionStore } from "../../src/index.js";
import { startRedis } from "../../test/support/redis.js";
import type { Experiment } from "../experiment.js";
import { freeze, silent, sleep, thaw } from "../faults.js";
import { DUPLICATED, LOST, STALE, UNVERIFIED } from "../history.js";
import { Writers } from "../writers.js";

/** Long enough for writes still queued when the server resumes to land. */
const ZOMBIE_WINDOW_MS = 1500;

/**
 * Standalone Redis with an fsync-always AOF (so an acknowledged write survives kill -9).
 * Phase 1: a SIGSTOP freeze; writers stop before SIGCONT, so whatever lands afterwards comes from
 * writes already answered. Phase 2: writers run through a kill -9 and a restart.
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
    const reader = await createRedisSessionStore(options);
    const writers = new Writers(store, probe, { writers: 8, counters: 2, prefix: "sa:" });
    let frozen: number | undefined;
    try {
      writers.start();
      await sleep(ctx.quick ? 500 : 1000);
      frozen = freeze(node);
      await sleep(ctx.quick ? 1500 : 3000);
      await writers.stop();
      thaw(frozen);
      frozen = undefined;
      await sleep(ZOMBIE_WINDOW_MS);
      await writers.verify(reader, 10_000);
      writers.start();
      await sleep(ctx.quick ? 500 : 1000);
      await node.kill();
      await sleep(500);
      await node.restart();
      await sleep(ctx.quick ? 1000 : 2000);
      await writers.stop();
      await sleep(ZOMBIE_WINDOW_MS);
      await writers.verify(reader, 10_000);
    } finally {
      if (frozen !== undefined) thaw(frozen);
      await writers.stop();
      await Promise.all([store.disconnect(), reader.disconnect()]);
      await node.stop();
    }
  },
};
