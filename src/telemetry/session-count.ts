import type { Gauge } from "prom-client";
import { withTimeout } from "../timeout.js";
import type { Backend, StoreInternals } from "../types.js";
import { reportSwallowed } from "./safely.js";

/** Redis stores are counted in the background at most this often (ms). */
export const SESSION_COUNT_INTERVAL_MS = 15_000;
/** A scrape waits at most this long (ms) for a session count, then serves the last value. */
export const SESSION_COUNT_WAIT_MS = 100;
/** The background count of a Redis store scans at most this many keys (beyond: no value). */
export const SESSION_COUNT_MAX_KEYS = 100_000;

/** Reads the number of live sessions of one store for the `sessions` gauge. */
export interface SessionCountSource {
  readonly backend: Backend;
  /** Stores that count the same sessions (same Redis prefix) share a key; one of them is read. */
  readonly key: string;
  /** The count to report, `null` when unknown (the series is then left out). */
  read(): Promise<number | null>;
}

/**
 * The stores counted by each `sessions` gauge this package created (with `sessionsCollect` as its
 * `collect`), kept under a global symbol so that two loaded copies of this package sharing one
 * registry feed the same gauge.
 */
const SOURCES = Symbol.for("mcp-session-store.session-count-sources");
type SourcesByGauge = WeakMap<object, Map<string, SessionCountSource>>;
const global = globalThis as { [SOURCES]?: SourcesByGauge };
global[SOURCES] ??= new WeakMap();
const sourcesByGauge: SourcesByGauge = global[SOURCES];

/**
 * The `collect` option of the `sessions` gauge: at scrape time, sums the counts of the stores
 * added with `addSessionCountSource` (one per key), by backend.
 */
export async function sessionsCollect(this: Gauge<"backend">): Promise<void> {
  const sources = [...(sourcesByGauge.get(this)?.values() ?? [])];
  const counts = await Promise.all(
    sources.map(async (source) => {
      try {
        return { backend: source.backend, count: await source.read() };
      } catch (error) {
        reportSwallowed("session count", error);
        return { backend: source.backend, count: null };
      }
    }),
  );
  const totals = new Map<Backend, number | null>();
  for (const { backend, count } of counts) {
    const total = totals.get(backend);
    totals.set(backend, count === null || total === null ? null : (total ?? 0) + count);
  }
  for (const [backend, total] of totals) {
    if (total === null) this.remove(backend);
    else this.set({ backend }, total);
  }
}

/**
 * Marks `gauge`, just created with `collect: sessionsCollect`, as one that stores can be added
 * to; a gauge not marked is the application's, which `addSessionCountSource` leaves alone.
 */
export function acceptSessionCounts(gauge: Gauge<"backend">): Gauge<"backend"> {
  if (!sourcesByGauge.has(gauge)) sourcesByGauge.set(gauge, new Map());
  return gauge;
}

/**
 * Adds a store to the `sessions` gauge; returns the function that removes it. A gauge of that
 * name created by the application has no collector of ours and is left alone (reported once).
 */
export function addSessionCountSource(
  gauge: Gauge<"backend">,
  source: SessionCountSource,
): () => void {
  const sources = sourcesByGauge.get(gauge);
  if (sources === undefined) {
    reportSwallowed(
      "sessions gauge of the application",
      new Error("the registry's sessions gauge was not created by mcp-session-store"),
    );
    return () => {};
  }
  sources.set(source.key, source);
  return () => {
    if (sources.get(source.key) === source) sources.delete(source.key);
  };
}

let anonymousStores = 0;

/** The session count source of a backend, read at most as often as its backend allows. */
export function sessionCountSource(backend: Backend, inner: StoreInternals): SessionCountSource {
  const read =
    backend === "memory"
      ? countReader(() => inner.countSessions(), 0, SESSION_COUNT_WAIT_MS)
      : countReader(
          () => inner.countSessions({ maxKeys: SESSION_COUNT_MAX_KEYS }),
          SESSION_COUNT_INTERVAL_MS,
          SESSION_COUNT_WAIT_MS,
        );
  const redis = inner.redis;
  // Redis stores with the same prefix count the same keys: one of them is read.
  const key = redis === undefined ? `store:${++anonymousStores}` : `redis:${redis.prefix}`;
  return { backend, key, read };
}

/** Serves the last known count; refreshes it at most every `intervalMs`, waiting at most `waitMs`. */
function countReader(
  count: () => Promise<number | null>,
  intervalMs: number,
  waitMs: number,
): () => Promise<number | null> {
  let last: number | null = null;
  let startedAt = Number.NEGATIVE_INFINITY;
  let pending: Promise<void> | undefined;
  return async () => {
    const now = performance.now();
    if (pending === undefined && now - startedAt >= intervalMs) {
      startedAt = now;
      pending = refresh().finally(() => {
        pending = undefined;
      });
    }
    if (pending !== undefined) await settledWithin(pending, waitMs);
    return last;
  };

  async function refresh(): Promise<void> {
    try {
      last = await count();
    } catch (error) {
      // Backend down: keep serving the last value.
      reportSwallowed("session count refresh", error);
    }
  }
}

/** Waits for `promise` (which never rejects) or `ms`, whichever comes first. */
async function settledWithin(promise: Promise<void>, ms: number): Promise<void> {
  await withTimeout(promise, ms).catch(() => undefined);
}
