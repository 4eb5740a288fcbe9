import { Counter, Gauge, type Registry } from "prom-client";
import { ErrorCode, SessionStoreError } from "../errors.js";
import type { StoreHistogram } from "./bound-series.js";
import { getOrCreateMetric, type MetricKind } from "./get-or-create-metric.js";
import { SeriesHistogram } from "./series-histogram.js";
import { acceptSessionCounts, sessionsCollect } from "./session-count.js";

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
  operationDuration: StoreHistogram<"operation" | "backend" | "outcome">;
  operationErrors: Counter<"operation" | "backend" | "code">;
  payloadSize: StoreHistogram<"operation" | "backend">;
  sessions: Gauge<"backend">;
  lockAcquireDuration: StoreHistogram<"backend" | "outcome">;
  lockHoldDuration: StoreHistogram<"backend">;
  lockContention: Counter<"backend">;
  lockRetries: Counter<"backend">;
  lockLost: Counter<"backend">;
  locksHeld: Gauge<"backend">;
  lockWaiters: Gauge<"backend">;
  redlockNodeErrors: Counter<"node">;
  backendInfo: Gauge<"backend" | "mode" | "fallback">;
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

function invalid(option: string, message: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.INVALID_ARGUMENT,
    `Invalid option "${option}": ${message}`,
    { details: { option } },
  );
}

interface MetricSpec<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
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

  const shared = <M, L extends string>(type: MetricKind, spec: MetricSpec<L>, create: () => M) =>
    getOrCreateMetric(registry, { name: spec.name, type, labelNames: spec.labelNames }, create);
  // Histograms of fixed series: see `SeriesHistogram` for why not prom-client's own.
  const histogram = <L extends string>(spec: MetricSpec<L>, buckets: readonly number[]) =>
    shared<StoreHistogram<L>, L>("histogram", spec, () =>
      SeriesHistogram.register(registry, { ...spec, buckets }),
    );
  const counter = <L extends string>(spec: MetricSpec<L>) =>
    shared("counter", spec, () => new Counter<L>({ ...spec, registers }));
  const gauge = <L extends string>(spec: MetricSpec<L>) =>
    shared("gauge", spec, () => new Gauge<L>({ ...spec, registers }));

  return {
    operationDuration: histogram(
      {
        name: n.operationDuration,
        help: "Duration of session store operations in seconds, by outcome (ok, hit, miss, error).",
        labelNames: ["operation", "backend", "outcome"],
      },
      durationBuckets,
    ),
    operationErrors: counter({
      name: n.operationErrors,
      help: "Session store operations that failed, by error code (an ErrorCode or unknown).",
      labelNames: ["operation", "backend", "code"],
    }),
    payloadSize: histogram(
      {
        name: n.payloadSize,
        help: "Size of session data in bytes (serialized JSON, UTF-8) read by get and written by set and update.",
        labelNames: ["operation", "backend"],
      },
      PAYLOAD_BUCKETS,
    ),
    sessions: getOrCreateMetric(
      registry,
      { name: n.sessions, type: "gauge", labelNames: ["backend"] },
      () =>
        acceptSessionCounts(
          new Gauge({
            name: n.sessions,
            help: "Live sessions (memory: exact at scrape; Redis: counted in the background at most every 15 s).",
            labelNames: ["backend"] as const,
            registers,
            collect: sessionsCollect,
          }),
        ),
    ),
    lockAcquireDuration: histogram(
      {
        name: n.lockAcquireDuration,
        help: "Time spent waiting for a session lock in seconds, by outcome (acquired, timeout, error, aborted).",
        labelNames: ["backend", "outcome"],
      },
      lockBuckets,
    ),
    lockHoldDuration: histogram(
      {
        name: n.lockHoldDuration,
        help: "Time a session lock was held in seconds, until release or loss.",
        labelNames: ["backend"],
      },
      lockBuckets,
    ),
    lockContention: counter({
      name: n.lockContention,
      help: "Lock acquisition attempts that found the lock held by someone else.",
      labelNames: ["backend"],
    }),
    lockRetries: counter({
      name: n.lockRetries,
      help: "Lock acquisition attempts that failed and were retried.",
      labelNames: ["backend"],
    }),
    lockLost: counter({
      name: n.lockLost,
      help: "Held locks whose lease was lost (expired unextended, or an extension failed).",
      labelNames: ["backend"],
    }),
    locksHeld: gauge({
      name: n.locksHeld,
      help: "Session locks currently held by this process.",
      labelNames: ["backend"],
    }),
    lockWaiters: gauge({
      name: n.lockWaiters,
      help: "Lock acquisitions currently waiting in this process.",
      labelNames: ["backend"],
    }),
    redlockNodeErrors: counter({
      name: n.redlockNodeErrors,
      help: "Commands that failed on one Redlock node (node: configured host:port).",
      labelNames: ["node"],
    }),
    backendInfo: gauge({
      name: n.backendInfo,
      help: "Always 1: the backend in use, its mode (memory, standalone, sentinel, cluster) and whether it is a fallback.",
      labelNames: ["backend", "mode", "fallback"],
    }),
  };
}
