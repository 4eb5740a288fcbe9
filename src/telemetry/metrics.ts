import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { ErrorCode, SessionStoreError } from "../errors.js";
import type { Backend } from "../types.js";

/** Operation label values: one per `SessionStore` method, plus the lock's own calls. */
export const OPERATIONS = [
  "get",
  "set",
  "update",
  "delete",
  "has",
  "touch",
  "ttl",
  "list",
  "health",
  "lock_acquire",
  "lock_extend",
  "lock_release",
] as const;
export type Operation = (typeof OPERATIONS)[number];

export type Outcome = "ok" | "hit" | "miss" | "error";
export type LockOutcome = "acquired" | "timeout" | "error" | "aborted";

/**
 * Outcomes each operation can record. Calls whose answer says whether the session existed
 * (`get`, `has`, `ttl`, `touch`, `delete`) record `hit`/`miss`; the others record `ok`.
 */
export const OUTCOMES: Readonly<Record<Operation, readonly Outcome[]>> = Object.freeze({
  get: ["hit", "miss", "error"],
  has: ["hit", "miss", "error"],
  ttl: ["hit", "miss", "error"],
  touch: ["hit", "miss", "error"],
  delete: ["hit", "miss", "error"],
  set: ["ok", "error"],
  update: ["ok", "error"],
  list: ["ok", "error"],
  health: ["ok", "error"],
  lock_acquire: ["ok", "error"],
  lock_extend: ["ok", "error"],
  lock_release: ["ok", "error"],
});

export const LOCK_OUTCOMES: readonly LockOutcome[] = ["acquired", "timeout", "error", "aborted"];

/** Operations whose serialized payload is measured. */
export const PAYLOAD_OPERATIONS = ["get", "set", "update"] as const;
export type PayloadOperation = (typeof PAYLOAD_OPERATIONS)[number];

/**
 * Error series created at zero: `ERR_BACKEND_UNAVAILABLE` for every operation, plus the codes an
 * alert watches on the operations that raise them. Any other code appears on its first
 * occurrence (12 operations x 12 codes would be 144 mostly useless series per backend).
 */
export const EXPECTED_ERROR_CODES: Readonly<Record<Operation, readonly string[]>> = Object.freeze({
  get: [ErrorCode.BACKEND_UNAVAILABLE],
  set: [ErrorCode.BACKEND_UNAVAILABLE, ErrorCode.PAYLOAD_TOO_LARGE, ErrorCode.SERIALIZATION],
  update: [
    ErrorCode.BACKEND_UNAVAILABLE,
    ErrorCode.PAYLOAD_TOO_LARGE,
    ErrorCode.SERIALIZATION,
    ErrorCode.CONFLICT,
  ],
  delete: [ErrorCode.BACKEND_UNAVAILABLE],
  has: [ErrorCode.BACKEND_UNAVAILABLE],
  touch: [ErrorCode.BACKEND_UNAVAILABLE],
  ttl: [ErrorCode.BACKEND_UNAVAILABLE],
  list: [ErrorCode.BACKEND_UNAVAILABLE],
  health: [ErrorCode.BACKEND_UNAVAILABLE],
  lock_acquire: [
    ErrorCode.BACKEND_UNAVAILABLE,
    ErrorCode.LOCK_TIMEOUT,
    ErrorCode.LOCK_QUORUM,
    ErrorCode.ABORTED,
  ],
  lock_extend: [ErrorCode.BACKEND_UNAVAILABLE, ErrorCode.LOCK_LOST],
  lock_release: [ErrorCode.BACKEND_UNAVAILABLE],
});

/** Buckets of `..._operation_duration_seconds`, seconds (50 us to 2.5 s). */
export const DEFAULT_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
]);

/** Buckets of the lock histograms: the operation buckets plus 5, 10 and 30 s (leases are long). */
export const DEFAULT_LOCK_BUCKETS: readonly number[] = Object.freeze([
  ...DEFAULT_DURATION_BUCKETS,
  5,
  10,
  30,
]);

/** Buckets of `..._payload_size_bytes`: powers of 4 from 64 B to 4 MiB (default limit: 1 MiB). */
export const PAYLOAD_BUCKETS: readonly number[] = Object.freeze([
  64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
]);

/** Metric names, as in the table of the documentation. */
export const METRIC_NAMES = Object.freeze({
  operationDuration: "mcp_session_store_operation_duration_seconds",
  operationErrors: "mcp_session_store_operation_errors_total",
  payloadSize: "mcp_session_store_payload_size_bytes",
  sessions: "mcp_session_store_sessions",
  lockAcquireDuration: "mcp_session_store_lock_acquire_duration_seconds",
  lockHoldDuration: "mcp_session_store_lock_hold_duration_seconds",
  lockContention: "mcp_session_store_lock_contention_total",
  lockRetries: "mcp_session_store_lock_retries_total",
  lockLost: "mcp_session_store_lock_lost_total",
  locksHeld: "mcp_session_store_locks_held",
  lockWaiters: "mcp_session_store_lock_waiters",
  redlockNodeErrors: "mcp_session_store_redlock_node_errors_total",
  backendInfo: "mcp_session_store_backend_info",
});

/** The metric objects of one registry (shared by every store instrumented on it). */
export interface StoreMetrics {
  operationDuration: Histogram<"operation" | "backend" | "outcome">;
  operationErrors: Counter<"operation" | "backend" | "code">;
  payloadSize: Histogram<"operation" | "backend">;
  sessions: Gauge<"backend">;
  lockAcquireDuration: Histogram<"backend" | "outcome">;
  lockHoldDuration: Histogram<"backend">;
  lockContention: Counter<"backend">;
  lockRetries: Counter<"backend">;
  lockLost: Counter<"backend">;
  locksHeld: Gauge<"backend">;
  lockWaiters: Gauge<"backend">;
  redlockNodeErrors: Counter<"node">;
  backendInfo: Gauge<"backend" | "mode" | "fallback">;
}

/** Reads the number of live sessions of one store for the `sessions` gauge. */
export interface SessionCountSource {
  readonly backend: Backend;
  /** Stores that count the same sessions (same Redis prefix) share a key; one of them is read. */
  readonly key: string;
  /** The count to report, `null` when unknown (the series is then left out). */
  read(): Promise<number | null>;
}

const countSources = new WeakMap<object, Map<string, SessionCountSource>>();

function invalid(option: string, message: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.INVALID_ARGUMENT,
    `Invalid option "${option}": ${message}`,
    {
      details: { option },
    },
  );
}

/** Throws `ERR_INVALID_ARGUMENT` unless `buckets` is a non-empty, strictly increasing list of finite numbers > 0. */
export function checkBuckets(buckets: unknown, option: string): number[] {
  if (!Array.isArray(buckets) || buckets.length === 0) {
    throw invalid(option, "expected a non-empty array of bucket bounds in seconds");
  }
  let previous = 0;
  for (const bound of buckets) {
    if (typeof bound !== "number" || !Number.isFinite(bound) || bound <= previous) {
      throw invalid(option, "expected finite numbers > 0 in strictly increasing order");
    }
    previous = bound;
  }
  return [...buckets];
}

type AnyMetric = Histogram<string> | Counter<string> | Gauge<string>;

/**
 * The metric named `name` on `registry`: the existing one when another store (or the user)
 * registered it already with the same type and labels, else a new one.
 */
function metric<M extends AnyMetric>(
  registry: Registry,
  name: string,
  type: "histogram" | "counter" | "gauge",
  labelNames: readonly string[],
  create: () => M,
): M {
  const existing = registry.getSingleMetric(name) as
    | (AnyMetric & { type?: string; labelNames?: string[] })
    | undefined;
  if (existing === undefined) return create();
  const labels = existing.labelNames ?? [];
  if (
    existing.type !== type ||
    labels.length !== labelNames.length ||
    labelNames.some((label) => !labels.includes(label))
  ) {
    throw invalid(
      "registry",
      `the registry already holds a metric "${name}" of another type or with other labels ` +
        `(expected a ${type} with labels ${labelNames.join(", ")})`,
    );
  }
  return existing as M;
}

/**
 * A histogram that keeps exemplars (trace ids of sampled spans) whatever the registry's format.
 * prom-client refuses `enableExemplars` on a Prometheus-format registry at construction, but
 * only there: registered by hand, the Prometheus text omits the exemplars and the OpenMetrics
 * rendering of `metricsHandler` shows them, so one registry serves both formats.
 */
function withExemplars<T extends string>(
  registry: Registry,
  config: { name: string; help: string; labelNames: readonly T[]; buckets: number[] },
): Histogram<T> {
  const histogram = new Histogram<T>({ ...config, enableExemplars: true, registers: [] });
  registry.registerMetric(histogram);
  return histogram;
}

/** Sums the counts of every store on one gauge (deduplicated by key), at scrape time. */
async function collectSessions(this: Gauge<"backend">): Promise<void> {
  const sources = countSources.get(this);
  if (sources === undefined) return;
  const totals = new Map<Backend, number | null>();
  const counts = await Promise.all(
    [...sources.values()].map(async (source) => {
      try {
        return { backend: source.backend, count: await source.read() };
      } catch {
        return { backend: source.backend, count: null };
      }
    }),
  );
  for (const { backend, count } of counts) {
    const total = totals.get(backend);
    totals.set(backend, count === null || total === null ? null : (total ?? 0) + count);
  }
  for (const [backend, total] of totals) {
    if (total === null) this.remove(backend);
    else this.set({ backend }, total);
  }
}

/** Adds a store to the `sessions` gauge; returns the function that removes it. */
export function addSessionCountSource(
  gauge: Gauge<"backend">,
  source: SessionCountSource,
): () => void {
  let sources = countSources.get(gauge);
  if (sources === undefined) {
    sources = new Map();
    countSources.set(gauge, sources);
    // A gauge created elsewhere (not by `storeMetrics`) gets the collector as well.
    const own = gauge as unknown as { collect?: () => unknown };
    if (own.collect !== collectSessions) {
      const previous = own.collect;
      own.collect = async function (this: Gauge<"backend">) {
        if (previous !== undefined) await previous.call(this);
        await collectSessions.call(this);
      };
    }
  }
  const map = sources;
  map.set(source.key, source);
  return () => {
    if (map.get(source.key) === source) map.delete(source.key);
  };
}

/**
 * The metrics of the table in the documentation, on `registry`. Calling it again with the same
 * registry returns the same objects, so several stores can share one registry (the buckets of
 * the first call win).
 */
export function storeMetrics(
  registry: Registry,
  options: { durationBuckets?: readonly number[]; lockBuckets?: readonly number[] } = {},
): StoreMetrics {
  const durationBuckets = checkBuckets(
    options.durationBuckets ?? DEFAULT_DURATION_BUCKETS,
    "durationBuckets",
  );
  const lockBuckets = checkBuckets(options.lockBuckets ?? DEFAULT_LOCK_BUCKETS, "lockBuckets");
  const registers = [registry];
  const n = METRIC_NAMES;

  return {
    operationDuration: metric(
      registry,
      n.operationDuration,
      "histogram",
      ["operation", "backend", "outcome"],
      () =>
        withExemplars(registry, {
          name: n.operationDuration,
          help: "Duration of session store operations in seconds, by outcome (ok, hit, miss, error).",
          labelNames: ["operation", "backend", "outcome"] as const,
          buckets: durationBuckets,
        }),
    ),
    operationErrors: metric(
      registry,
      n.operationErrors,
      "counter",
      ["operation", "backend", "code"],
      () =>
        new Counter({
          name: n.operationErrors,
          help: "Session store operations that failed, by error code (an ErrorCode or unknown).",
          labelNames: ["operation", "backend", "code"] as const,
          registers,
        }),
    ),
    payloadSize: metric(
      registry,
      n.payloadSize,
      "histogram",
      ["operation", "backend"],
      () =>
        new Histogram({
          name: n.payloadSize,
          help: "Size of session data in bytes (serialized JSON, UTF-8) read by get and written by set and update.",
          labelNames: ["operation", "backend"] as const,
          buckets: [...PAYLOAD_BUCKETS],
          registers,
        }),
    ),
    sessions: metric(
      registry,
      n.sessions,
      "gauge",
      ["backend"],
      () =>
        new Gauge({
          name: n.sessions,
          help: "Live sessions (memory: exact at scrape; Redis: counted in the background at most every 15 s).",
          labelNames: ["backend"] as const,
          registers,
          collect: collectSessions,
        }),
    ),
    lockAcquireDuration: metric(
      registry,
      n.lockAcquireDuration,
      "histogram",
      ["backend", "outcome"],
      () =>
        withExemplars(registry, {
          name: n.lockAcquireDuration,
          help: "Time spent waiting for a session lock in seconds, by outcome (acquired, timeout, error, aborted).",
          labelNames: ["backend", "outcome"] as const,
          buckets: lockBuckets,
        }),
    ),
    lockHoldDuration: metric(
      registry,
      n.lockHoldDuration,
      "histogram",
      ["backend"],
      () =>
        new Histogram({
          name: n.lockHoldDuration,
          help: "Time a session lock was held in seconds, until release or loss.",
          labelNames: ["backend"] as const,
          buckets: lockBuckets,
          registers,
        }),
    ),
    lockContention: metric(
      registry,
      n.lockContention,
      "counter",
      ["backend"],
      () =>
        new Counter({
          name: n.lockContention,
          help: "Lock acquisition attempts that found the lock held by someone else.",
          labelNames: ["backend"] as const,
          registers,
        }),
    ),
    lockRetries: metric(
      registry,
      n.lockRetries,
      "counter",
      ["backend"],
      () =>
        new Counter({
          name: n.lockRetries,
          help: "Lock acquisition attempts that failed and were retried.",
          labelNames: ["backend"] as const,
          registers,
        }),
    ),
    lockLost: metric(
      registry,
      n.lockLost,
      "counter",
      ["backend"],
      () =>
        new Counter({
          name: n.lockLost,
          help: "Held locks whose lease was lost (expired unextended, or an extension failed).",
          labelNames: ["backend"] as const,
          registers,
        }),
    ),
    locksHeld: metric(
      registry,
      n.locksHeld,
      "gauge",
      ["backend"],
      () =>
        new Gauge({
          name: n.locksHeld,
          help: "Session locks currently held by this process.",
          labelNames: ["backend"] as const,
          registers,
        }),
    ),
    lockWaiters: metric(
      registry,
      n.lockWaiters,
      "gauge",
      ["backend"],
      () =>
        new Gauge({
          name: n.lockWaiters,
          help: "Lock acquisitions currently waiting in this process.",
          labelNames: ["backend"] as const,
          registers,
        }),
    ),
    redlockNodeErrors: metric(
      registry,
      n.redlockNodeErrors,
      "counter",
      ["node"],
      () =>
        new Counter({
          name: n.redlockNodeErrors,
          help: "Commands that failed on one Redlock node (node: configured host:port).",
          labelNames: ["node"] as const,
          registers,
        }),
    ),
    backendInfo: metric(
      registry,
      n.backendInfo,
      "gauge",
      ["backend", "mode", "fallback"],
      () =>
        new Gauge({
          name: n.backendInfo,
          help: "Always 1: the backend in use, its mode (memory, standalone, sentinel, cluster) and whether it is a fallback.",
          labelNames: ["backend", "mode", "fallback"] as const,
          registers,
        }),
    ),
  };
}

interface SeriesEntry {
  labels: Record<string, string | number>;
  bucketValues: Record<string, number>;
  sum: number;
  count: number;
}
interface HistogramInternals {
  hashMap?: Record<string, SeriesEntry>;
  upperBounds?: number[];
  labelNames?: string[];
}

/** The key and entry prom-client keeps for one label set of a histogram, if any. */
function entryOf(
  histogram: object,
  labels: Record<string, string>,
): [string, SeriesEntry] | undefined {
  const { hashMap, labelNames = [] } = histogram as HistogramInternals;
  if (hashMap === null || typeof hashMap !== "object") return undefined;
  for (const [key, entry] of Object.entries(hashMap)) {
    if (labelNames.every((name) => String(entry?.labels?.[name]) === labels[name]))
      return [key, entry];
  }
  return undefined;
}

/** Creates a histogram series at zero unless it exists (`zero()` would wipe another store's counts). */
export function ensureSeries(histogram: Histogram<string>, labels: Record<string, string>): void {
  if (entryOf(histogram, labels) === undefined) histogram.zero(labels);
}

/**
 * An `observe(value)` for one fixed series. prom-client hashes and validates the label set on
 * every call (about 1 us); the series of a store are fixed, so observations go straight to the
 * series' entry. Whenever that entry is not the registry's one any more (`reset()`, `remove()`)
 * or does not look as expected, the public `observe` is used instead.
 */
export function seriesObserver(
  histogram: Histogram<string>,
  labels: Record<string, string>,
): (value: number) => void {
  ensureSeries(histogram, labels);
  const child = histogram.labels(labels);
  const slow = (value: number): void => child.observe(value);
  const internals = histogram as unknown as HistogramInternals;
  const bounds = internals.upperBounds;
  const found = entryOf(histogram, labels);
  if (found === undefined || !Array.isArray(bounds)) return slow;
  const [key, entry] = found;
  const keys = bounds.map(String);
  if (
    typeof entry.count !== "number" ||
    typeof entry.sum !== "number" ||
    keys.some((k) => typeof entry.bucketValues?.[k] !== "number")
  ) {
    return slow;
  }
  const last = bounds.length;
  return (value) => {
    if (internals.hashMap?.[key] !== entry || !Number.isFinite(value)) {
      slow(value);
      return;
    }
    let i = 0;
    while (i < last && value > (bounds[i] as number)) i++;
    const bucket = keys[i];
    if (bucket !== undefined) entry.bucketValues[bucket] = (entry.bucketValues[bucket] ?? 0) + 1;
    entry.sum += value;
    entry.count += 1;
  };
}
