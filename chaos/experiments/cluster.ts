import { createRedisSessionStore, type SessionStoreOptions } from "../../src/index.js";
import { type RedisNode, startRedisCluster } from "../../test/support/redis.js";
import { clusterNodes, clusterOk, ownerOf } from "../cluster-admin.js";
import type { Experiment } from "../experiment.js";
import { freeze, silent, sleep, thaw, until } from "../faults.js";
import { DUPLICATED, LOST, STALE, UNVERIFIED } from "../history.js";
import { Writers } from "../writers.js";

const FREEZE_MS = 6000;
const PROMOTION_TIMEOUT_MS = 30_000;
/** Long enough for writes a client still retries after the caller gave up to land. */
const ZOMBIE_WINDOW_MS = 3000;
const PREFIX = "mcp:session:";

/**
 * Redis Cluster: a master frozen long enough for its replica to be promoted. Writers stop
 * before it resumes, so any value that changes afterwards comes from a write the store had
 * already answered: the final value of every key must still be its last acknowledged one.
 */
export const experiment: Experiment = {
  figures: [LOST, STALE, DUPLICATED, UNVERIFIED, "failovers not observed"],
  async run(ctx, probe) {
    const cluster = await startRedisCluster();
    const options: SessionStoreOptions = {
      redis: { clusterNodes: cluster.seeds },
      commandTimeout: ctx.commandTimeoutMs,
      instrumentation: false,
      logger: silent,
    };
    const store = await createRedisSessionStore(options);
    const writers = new Writers(store, probe, { writers: 16, counters: 4, prefix: `r${ctx.run}:` });
    let frozen: number | undefined;
    try {
      writers.start();
      await sleep(ctx.quick ? 500 : 1000);
      const seed = cluster.nodes[0] as RedisNode;
      const { master, replicaIds } = await ownerOf(seed, `${PREFIX}{r${ctx.run}:w0}`);
      const target = cluster.nodes.find((n) => n.port === master.port) as RedisNode;
      const others = cluster.nodes.filter((n) => n !== target);
      const start = performance.now();
      frozen = freeze(target);
      // Usually 3-4 s (node timeout 2 s, then an election); a loaded machine can take longer.
      const promoted = await until("replica promotion", PROMOTION_TIMEOUT_MS, async () => {
        const views = await Promise.all(others.map((n) => clusterNodes(n).catch(() => [])));
        return views.some((nodes) =>
          nodes.some((n) => replicaIds.includes(n.id) && n.flags.includes("master")),
        );
      }).then(
        () => true,
        () => false,
      );
      if (!promoted) probe.violation("failovers not observed", `port ${target.port}`);
      await sleep(Math.max(0, FREEZE_MS - (performance.now() - start)));
      await writers.stop();
      thaw(frozen);
      frozen = undefined;
      await until("cluster_state:ok", 20_000, () => clusterOk(cluster.nodes)).catch(() => {});
      await sleep(ZOMBIE_WINDOW_MS);
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
      await cluster.stop();
    }
  },
};
