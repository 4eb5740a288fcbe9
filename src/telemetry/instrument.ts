import { context, type Span } from "@opentelemetry/api";
import { Registry } from "prom-client";
import { ErrorCode, errorCodeOf, SessionStoreError } from "../errors.js";
import { runWithLock } from "../locks/with-lock.js";
import {
  type Backend,
  type InstrumentOptions,
  internals,
  type ListOptions,
  type Lock,
  type LockOptions,
  type SessionStore,
  type SetOptions,
  type StoreHealth,
  type StoreInternals,
  type StoreObserver,
} from "../types.js";
import {
  addSessionCountSource,
  EXPECTED_ERROR_CODES,
  ensureSeries,
  LOCK_OUTCOMES,
  type LockOutcome,
  OPERATIONS,
  type Operation,
  OUTCOMES,
  type Outcome,
  PAYLOAD_OPERATIONS,
  type PayloadOperation,
  type StoreMetrics,
  seriesObserver,
  storeMetrics,
} from "./metrics.js";
import { type ExemplarLabels, StoreTracing } from "./tracing.js";

/** A store returned by `instrument()`: the same store, plus the registry its metrics live in. */
export type InstrumentedSessionStore = SessionStore & { readonly registry: Registry };

/** Redis stores are counted in the background at most this often (ms). */
export const SESSION_COUNT_INTERVAL_MS = 15_000;
/** A scrape waits at most this long (ms) for a session count, then serves the last value. */
export const SESSION_COUNT_WAIT_MS = 100;
/** The background count of a Redis store scans at most this many keys (beyond: no value). */
export const SESSION_COUNT_MAX_KEYS = 100_000;

/**
 * The hook through which a backend reports the size of what it serialized or parsed, so the
 * decorator does not serialize anything again. (Stores without `internals` are measured here.)
 */
interface PayloadObserver extends StoreObserver {
  payloadSize?(operation: PayloadOperation, bytes: number): void;
}

type Observe = (value: number) => void;
type LabelSet = Record<string, string>;

/** What a `health()` answer of `ok: false` counts as. */
const BACKEND_DOWN = new SessionStoreError(
  ErrorCode.BACKEND_UNAVAILABLE,
  "The health check reported the backend unavailable",
);

const HIT_OR_MISS = (found: boolean): Outcome => (found ? "hit" : "miss");
const OK = (): Outcome => "ok";
const NULL_IS_MISS = (value: unknown): Outcome => (value === null ? "miss" : "hit");

function lockOutcomeOf(error: unknown): LockOutcome {
  const code = errorCodeOf(error);
  if (code === ErrorCode.LOCK_TIMEOUT) return "timeout";
  if (code === ErrorCode.ABORTED) return "aborted";
  return "error";
}

const NO_EXEMPLAR = Object.freeze({});

/** A histogram created elsewhere may lack exemplars; its `observe` then takes (labels, value). */
function exemplarsOn(histogram: object): boolean {
  return (histogram as { enableExemplars?: boolean }).enableExemplars === true;
}

function jsonBytes(value: unknown): number | undefined {
  try {
    const json = JSON.stringify(value);
    return json === undefined ? undefined : Buffer.byteLength(json, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * The metric handles of one store, bound to its backend label. Every method swallows its own
 * failures: a registry that throws never reaches the caller.
 */
class Recorder {
  private readonly durations = {} as Record<
    Operation,
    Partial<Record<Outcome, { labels: LabelSet; observe: Observe }>>
  >;
  private readonly errorLabels = new Map<string, LabelSet>();
  private readonly payload = new Map<PayloadOperation, Observe>();
  private readonly backendLabels: LabelSet;

  constructor(
    readonly metrics: StoreMetrics,
    private readonly backend: Backend,
  ) {
    this.backendLabels = { backend };
    const m = metrics;
    for (const operation of OPERATIONS) {
      this.durations[operation] = {};
      for (const outcome of OUTCOMES[operation]) {
        const labels = { operation, backend, outcome };
        this.durations[operation][outcome] = {
          labels,
          observe: this.safe(() => seriesObserver(m.operationDuration, labels)) ?? (() => {}),
        };
      }
      for (const code of EXPECTED_ERROR_CODES[operation]) {
        this.safe(() => m.operationErrors.inc(this.errorLabelsOf(operation, code), 0));
      }
    }
    for (const operation of PAYLOAD_OPERATIONS) {
      const labels = { operation, backend };
      this.payload.set(
        operation,
        this.safe(() => seriesObserver(m.payloadSize, labels)) ?? (() => {}),
      );
    }
    for (const outcome of LOCK_OUTCOMES) {
      this.safe(() => ensureSeries(m.lockAcquireDuration, { backend, outcome }));
    }
    const b = this.backendLabels;
    this.safe(() => ensureSeries(m.lockHoldDuration, b));
    this.safe(() => m.lockContention.inc(b, 0));
    this.safe(() => m.lockRetries.inc(b, 0));
    this.safe(() => m.lockLost.inc(b, 0));
    this.safe(() => m.locksHeld.inc(b, 0));
    this.safe(() => m.lockWaiters.inc(b, 0));
  }

  private safe<R>(fn: () => R): R | undefined {
    try {
      return fn();
    } catch {
      return undefined;
    }
  }

  private errorLabelsOf(operation: Operation, code: string): LabelSet {
    const key = `${operation}:${code}`;
    let labels = this.errorLabels.get(key);
    if (labels === undefined) {
      labels = { operation, backend: this.backend, code };
      this.errorLabels.set(key, labels);
    }
    return labels;
  }

  operation(
    operation: Operation,
    outcome: Outcome,
    seconds: number,
    error: unknown,
    exemplar: ExemplarLabels | undefined,
  ): void {
    try {
      const series = this.durations[operation][outcome];
      if (series !== undefined) {
        const histogram = this.metrics.operationDuration;
        if (exemplar !== undefined && exemplarsOn(histogram)) {
          histogram.observe({
            labels: series.labels,
            value: seconds,
            exemplarLabels: exemplar as unknown as LabelSet,
          });
        } else {
          series.observe(seconds);
        }
      }
    } catch {
      // telemetry never reaches the caller
    }
    if (outcome === "error") {
      try {
        this.metrics.operationErrors.inc(this.errorLabelsOf(operation, errorCodeOf(error)));
      } catch {
        // as above
      }
    }
  }

  payloadSize(operation: PayloadOperation, bytes: number): void {
    try {
      this.payload.get(operation)?.(bytes);
    } catch {
      // as above
    }
  }

  lockAcquired(outcome: LockOutcome, seconds: number, exemplar: ExemplarLabels | undefined): void {
    try {
      const labels = { backend: this.backend, outcome };
      const histogram = this.metrics.lockAcquireDuration;
      // With exemplars on, prom-client's `observe` takes one object (and ignores empty exemplars).
      if (exemplarsOn(histogram)) {
        histogram.observe({
          labels,
          value: seconds,
          exemplarLabels: (exemplar ?? NO_EXEMPLAR) as unknown as LabelSet,
        });
      } else {
        histogram.observe(labels, seconds);
      }
    } catch {
      // as above
    }
  }

  lockHeld(seconds: number): void {
    try {
      this.metrics.lockHoldDuration.observe(this.backendLabels, seconds);
    } catch {
      // as above
    }
  }

  count(
    metric: "lockContention" | "lockRetries" | "lockLost" | "locksHeld" | "lockWaiters",
    delta: number,
  ): void {
    try {
      this.metrics[metric].inc(this.backendLabels, delta);
    } catch {
      // as above
    }
  }

  redlockNodeError(node: string): void {
    try {
      this.metrics.redlockNodeErrors.inc({ node: String(node) });
    } catch {
      // as above
    }
  }
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
      const refresh = (async () => {
        try {
          last = await count();
        } catch {
          // Backend down: keep serving the last value.
        }
      })();
      pending = refresh.finally(() => {
        pending = undefined;
      });
    }
    if (pending !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        pending,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, waitMs);
          timer.unref?.();
        }),
      ]);
      clearTimeout(timer);
    }
    return last;
  };
}

let anonymousStores = 0;

/**
 * Wraps a store so every operation records Prometheus metrics and an OpenTelemetry span. The
 * wrapper behaves exactly as the store (same results, same errors, methods work detached), and
 * telemetry never throws into the caller. Metrics go to `options.registry`, or to a new
 * `Registry` exposed as `store.registry`; several stores can share one registry.
 *
 * @example
 * const store = instrument(createMemorySessionStore({ instrumentation: false }));
 * http.createServer(metricsHandler(store.registry)).listen(9464);
 */
export function instrument(
  store: SessionStore,
  options: InstrumentOptions = {},
): InstrumentedSessionStore {
  if (store === null || typeof store !== "object" || typeof store.getSession !== "function") {
    throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "instrument() needs a SessionStore");
  }
  if (options === null || typeof options !== "object") {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      'Invalid option "instrumentation": expected an options object',
    );
  }
  const registry = options.registry ?? new Registry();
  if (typeof registry.getSingleMetric !== "function") {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      'Invalid option "registry": expected a prom-client Registry',
    );
  }
  const backend = store.backend;
  const metrics = storeMetrics(registry, options);
  const recorder = new Recorder(metrics, backend);
  const tracing = new StoreTracing(options.tracer, backend);
  const inner = (store as { [internals]?: StoreInternals })[internals];
  const cleanups: Array<() => void> = [];

  try {
    metrics.backendInfo.set(
      { backend, mode: inner?.mode ?? backend, fallback: String(inner?.fallback ?? false) },
      1,
    );
  } catch {
    // telemetry never reaches the caller
  }

  // Payload sizes come from the backend, which holds the JSON already; a foreign store without
  // `internals` is measured here by serializing its values.
  const measurePayload = inner === undefined;
  if (inner !== undefined) {
    try {
      const observer: PayloadObserver = {
        lockContention: () => recorder.count("lockContention", 1),
        lockRetry: (attempt, reason) => {
          recorder.count("lockRetries", 1);
          tracing.lockRetry(attempt, reason);
        },
        lockLost: () => recorder.count("lockLost", 1),
        redlockNodeError: (node) => recorder.redlockNodeError(node),
        payloadSize: (operation, bytes) => recorder.payloadSize(operation, bytes),
      };
      cleanups.push(inner.observe(observer));
    } catch {
      // as above
    }
    try {
      const redis = inner.redis;
      const count =
        backend === "memory"
          ? countReader(() => inner.countSessions(), 0, SESSION_COUNT_WAIT_MS)
          : countReader(
              () => inner.countSessions({ maxKeys: SESSION_COUNT_MAX_KEYS }),
              SESSION_COUNT_INTERVAL_MS,
              SESSION_COUNT_WAIT_MS,
            );
      cleanups.push(
        addSessionCountSource(metrics.sessions, {
          backend,
          // Redis stores with the same prefix count the same keys: one of them is read.
          key: redis === undefined ? `store:${++anonymousStores}` : `redis:${redis.prefix}`,
          read: count,
        }),
      );
    } catch {
      // as above
    }
  }

  /**
   * Runs one store call inside its span and records it. `call` is invoked exactly once; its
   * result or error (sync or async) reaches the caller untouched.
   */
  function run<R>(
    operation: Operation,
    id: string | undefined,
    call: () => Promise<R>,
    outcomeOf: (value: R) => Outcome,
    onSuccess?: (value: R) => void,
  ): Promise<R> {
    // No named closure per call: the hot path allocates as little as it can.
    const span = tracing.start(operation, id);
    const start = performance.now();
    let promise: Promise<R>;
    try {
      promise = span === undefined ? call() : within(span, call);
    } catch (error) {
      failed(operation, id, span, start, error);
      throw error;
    }
    return promise.then(
      (value) => {
        succeeded(operation, id, span, start, value, outcomeOf, onSuccess);
        return value;
      },
      (error: unknown) => {
        failed(operation, id, span, start, error);
        throw error;
      },
    );
  }

  function succeeded<R>(
    operation: Operation,
    id: string | undefined,
    span: Span | undefined,
    start: number,
    value: R,
    outcomeOf: (value: R) => Outcome,
    onSuccess: ((value: R) => void) | undefined,
  ): void {
    const seconds = (performance.now() - start) / 1000;
    let outcome: Outcome = "ok";
    try {
      outcome = outcomeOf(value);
      onSuccess?.(value);
    } catch {
      // telemetry never reaches the caller
    }
    // A resolved call is an error only for health() reporting `ok: false`.
    const error = outcome === "error" ? BACKEND_DOWN : undefined;
    recorder.operation(operation, outcome, seconds, error, tracing.exemplarOf(span));
    if (span !== undefined) tracing.end(span, outcome, error, id);
  }

  function failed(
    operation: Operation,
    id: string | undefined,
    span: Span | undefined,
    start: number,
    error: unknown,
  ): void {
    const seconds = (performance.now() - start) / 1000;
    recorder.operation(operation, "error", seconds, error, tracing.exemplarOf(span));
    if (span !== undefined) tracing.end(span, "error", error, id);
  }

  /** Calls `call` inside the span's context; falls back to a plain call if the context API fails. */
  function within<R>(span: Span, call: () => R): R {
    const ctx = tracing.contextOf(span);
    if (ctx === undefined) return call();
    let called = false;
    try {
      return context.with(ctx, () => {
        called = true;
        return call();
      });
    } catch (error) {
      if (called) throw error;
      return call();
    }
  }

  function instrumentLock(lock: Lock): Lock {
    const acquiredAt = performance.now();
    let released = false;
    let ended = false;
    const endHold = (): void => {
      if (ended) return;
      ended = true;
      recorder.count("locksHeld", -1);
      recorder.lockHeld((performance.now() - acquiredAt) / 1000);
    };
    recorder.count("locksHeld", 1);
    try {
      const onAbort = (): void => {
        // Without backend hooks, a lease that ends before release() is the only sign of a loss.
        if (!released && inner === undefined) recorder.count("lockLost", 1);
        endHold();
      };
      if (lock.signal.aborted) onAbort();
      else lock.signal.addEventListener("abort", onAbort, { once: true });
    } catch {
      // as above
    }
    const resource = lock.resource;
    return {
      get resource() {
        return lock.resource;
      },
      get fencingToken() {
        return lock.fencingToken;
      },
      get expiresAt() {
        return lock.expiresAt;
      },
      get signal() {
        return lock.signal;
      },
      extend: (...args: [ttlMs?: number]) =>
        run("lock_extend", resource, () => lock.extend(...args), OK),
      release: () => {
        released = true;
        endHold();
        return run("lock_release", resource, () => lock.release(), OK);
      },
    };
  }

  function acquireLock(...args: [id: string, options?: LockOptions]): Promise<Lock> {
    const id = args[0];
    const span = tracing.start("lock_acquire", id);
    const start = performance.now();
    recorder.count("lockWaiters", 1);
    const settle = (outcome: Outcome, lockOutcome: LockOutcome, error: unknown): void => {
      const seconds = (performance.now() - start) / 1000;
      const exemplar = tracing.exemplarOf(span);
      recorder.count("lockWaiters", -1);
      recorder.lockAcquired(lockOutcome, seconds, exemplar);
      recorder.operation("lock_acquire", outcome, seconds, error, exemplar);
      if (span !== undefined) tracing.end(span, outcome, error, id);
    };
    const fail = (error: unknown): never => {
      settle("error", lockOutcomeOf(error), error);
      throw error;
    };
    const call = (): Promise<Lock> => store.acquireLock(...args);
    let promise: Promise<Lock>;
    try {
      promise = span === undefined ? call() : within(span, call);
    } catch (error) {
      return fail(error);
    }
    return promise.then((lock) => {
      settle("ok", "acquired", undefined);
      try {
        return instrumentLock(lock);
      } catch {
        return lock;
      }
    }, fail);
  }

  let disconnected = false;
  const cleanup = (): void => {
    if (disconnected) return;
    disconnected = true;
    for (const remove of cleanups.splice(0)) {
      try {
        remove();
      } catch {
        // as above
      }
    }
  };

  const instrumented: InstrumentedSessionStore & {
    readonly [internals]: StoreInternals | undefined;
  } = {
    get backend() {
      return store.backend;
    },
    get registry() {
      return registry;
    },
    get [internals]() {
      return (store as { [internals]?: StoreInternals })[internals];
    },

    getSession: <T = unknown>(id: string): Promise<T | null> =>
      run(
        "get",
        id,
        () => store.getSession<T>(id),
        NULL_IS_MISS,
        measurePayload
          ? (value) => {
              if (value === null) return;
              const bytes = jsonBytes(value);
              if (bytes !== undefined) recorder.payloadSize("get", bytes);
            }
          : undefined,
      ),

    setSession: <T = unknown>(id: string, data: T, setOptions?: SetOptions): Promise<void> =>
      run(
        "set",
        id,
        () =>
          setOptions === undefined
            ? store.setSession(id, data)
            : store.setSession(id, data, setOptions),
        OK,
        measurePayload
          ? () => {
              const bytes = jsonBytes(data);
              if (bytes !== undefined) recorder.payloadSize("set", bytes);
            }
          : undefined,
      ),

    updateSession: <T = unknown>(
      id: string,
      fn: (current: T | null) => T | Promise<T>,
      setOptions?: SetOptions,
    ): Promise<T> =>
      run(
        "update",
        id,
        () =>
          setOptions === undefined
            ? store.updateSession<T>(id, fn)
            : store.updateSession<T>(id, fn, setOptions),
        OK,
        measurePayload
          ? (value) => {
              const bytes = jsonBytes(value);
              if (bytes !== undefined) recorder.payloadSize("update", bytes);
            }
          : undefined,
      ),

    deleteSession: (id: string): Promise<boolean> =>
      run("delete", id, () => store.deleteSession(id), HIT_OR_MISS),

    hasSession: (id: string): Promise<boolean> =>
      run("has", id, () => store.hasSession(id), HIT_OR_MISS),

    touchSession: (...args: [id: string, ttl?: number]): Promise<boolean> =>
      run("touch", args[0], () => store.touchSession(...args), HIT_OR_MISS),

    getSessionTtl: (id: string): Promise<number | null> =>
      run(
        "ttl",
        id,
        () => store.getSessionTtl(id),
        (value) => (value === null ? "miss" : "hit"),
      ),

    listSessions(...args: [options?: ListOptions]): AsyncIterable<string> {
      const iterable = store.listSessions(...args);
      return { [Symbol.asyncIterator]: () => instrumentIterator(iterable) };
    },

    acquireLock,

    withLock: <T>(
      id: string,
      fn: (lock: Lock) => Promise<T>,
      lockOptions?: LockOptions,
    ): Promise<T> => {
      if (typeof fn !== "function") {
        return Promise.reject(
          new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "withLock needs a function"),
        );
      }
      return runWithLock(
        () => (lockOptions === undefined ? acquireLock(id) : acquireLock(id, lockOptions)),
        fn,
      );
    },

    health: (): Promise<StoreHealth> =>
      run(
        "health",
        undefined,
        () => store.health(),
        (value) =>
          value !== null && typeof value === "object" && value.ok === false ? "error" : "ok",
      ),

    disconnect: async (): Promise<void> => {
      try {
        await store.disconnect();
      } finally {
        cleanup();
      }
    },

    [Symbol.asyncDispose]: async (): Promise<void> => {
      try {
        await (typeof store[Symbol.asyncDispose] === "function"
          ? store[Symbol.asyncDispose]()
          : store.disconnect());
      } finally {
        cleanup();
      }
    },
  };

  /**
   * One `list` observation per iteration: the time spent inside the store's `next()` calls
   * (not the caller's loop body), recorded when the iteration ends, breaks or fails.
   */
  function instrumentIterator(iterable: AsyncIterable<string>): AsyncIterator<string> {
    const span = tracing.start("list", undefined);
    let iterator: AsyncIterator<string>;
    try {
      iterator =
        span === undefined
          ? iterable[Symbol.asyncIterator]()
          : within(span, () => iterable[Symbol.asyncIterator]());
    } catch (error) {
      recorder.operation("list", "error", 0, error, tracing.exemplarOf(span));
      if (span !== undefined) tracing.end(span, "error", error, undefined);
      throw error;
    }
    let busy = 0;
    let done = false;
    const finish = (outcome: Outcome, error: unknown): void => {
      if (done) return;
      done = true;
      recorder.operation("list", outcome, busy / 1000, error, tracing.exemplarOf(span));
      if (span !== undefined) tracing.end(span, outcome, error, undefined);
    };
    const step = (call: () => Promise<IteratorResult<string>>): Promise<IteratorResult<string>> => {
      const start = performance.now();
      let promise: Promise<IteratorResult<string>>;
      try {
        promise = span === undefined ? call() : within(span, call);
      } catch (error) {
        busy += performance.now() - start;
        finish("error", error);
        throw error;
      }
      return promise.then(
        (result) => {
          busy += performance.now() - start;
          if (result.done) finish("ok", undefined);
          return result;
        },
        (error: unknown) => {
          busy += performance.now() - start;
          finish("error", error);
          throw error;
        },
      );
    };
    const wrapped: AsyncIterator<string> = {
      next: (...args: [] | [unknown]) => step(() => iterator.next(...args)),
    };
    if (typeof iterator.return === "function") {
      const ret = iterator.return;
      wrapped.return = (value?: unknown) =>
        step(() => ret.call(iterator, value)).finally(() => finish("ok", undefined));
    } else {
      wrapped.return = async (value?: unknown) => {
        finish("ok", undefined);
        return { done: true, value } as IteratorResult<string>;
      };
    }
    if (typeof iterator.throw === "function") {
      const thr = iterator.throw;
      wrapped.throw = (error?: unknown) => step(() => thr.call(iterator, error));
    }
    return wrapped;
  }

  return instrumented;
}
