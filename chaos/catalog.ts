/** Every experiment of `npm run chaos`, in the order they run. */
export interface CatalogEntry {
  /** File name under `chaos/experiments/`, and the `--only` name. */
  name: string;
  /** The deployment and the faults, as the report shows them. */
  setup: string;
  /** Runs by default; an intermittent defect needs several. */
  runs: number;
  /** Longest a run may take before it counts as hung, ms. */
  timeoutMs: number;
}

export const CATALOG: readonly CatalogEntry[] = [
  {
    name: "standalone",
    setup:
      "1 Redis (AOF fsync always); 8 writers + 2 shared counters; SIGSTOP 3 s (writers stopped before SIGCONT), then kill -9 and restart",
    runs: 1,
    timeoutMs: 60_000,
  },
  {
    name: "sentinel",
    setup:
      "master + replica + Sentinel; 8 writers + 2 counters; master SIGSTOP until the replica is promoted, writers stopped, old master kill -9, then restarted empty",
    runs: 1,
    timeoutMs: 90_000,
  },
  {
    name: "cluster",
    setup:
      "Cluster 3 masters + 3 replicas; 16 writers + 4 counters; a master SIGSTOP 6 s (replica promoted), writers stopped before SIGCONT",
    runs: 5,
    timeoutMs: 120_000,
  },
  {
    name: "queued-updates",
    setup:
      "1 Redis, ioredis client passed in and by URL; 5 updateSession + 5 setSession queued on one id while Redis is frozen",
    runs: 1,
    timeoutMs: 60_000,
  },
  {
    name: "lock-exclusion",
    setup:
      "3 lock nodes, 3 stores; 6 short holders on one lock, 3 withLock holders past 2/3 of the lease on another; one node frozen, one killed and restarted empty, another frozen",
    runs: 1,
    timeoutMs: 90_000,
  },
  {
    name: "lock-frozen-holder",
    setup:
      "holder child process SIGSTOPped past its lease, or its event loop blocked; 3 lock nodes and memory",
    runs: 1,
    timeoutMs: 90_000,
  },
  {
    name: "lock-quorum",
    setup:
      "3 lock nodes: one frozen, one killed (a new store starts), two killed (no grant), both restarted empty",
    runs: 1,
    timeoutMs: 90_000,
  },
  {
    name: "lock-restart-empty",
    setup:
      "3 lock nodes: one frozen while the token rises, another killed and restarted empty, then a quorum that holds the restarted node",
    runs: 1,
    timeoutMs: 90_000,
  },
];
