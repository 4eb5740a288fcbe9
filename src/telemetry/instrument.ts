import { Registry } from "prom-client";
import { ErrorCode, SessionStoreError } from "../errors.js";
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
} from "../types.js";
import { instrumentIterator } from "./instrumented-iterator.js";
import { acquireInstrumentedLock } from "./instrumented-lock.js";
import { type Outcome, type PayloadOperation, storeMetrics } from "./metrics.js";
import { Recorder } from "./recorder.js";
import { reportSwallowed, safely } from "./safely.js";
import { addSessionCountSource, sessionCountSource } from "./session-count.js";
import { TracedOperations } from "./traced-operation.js";
import { StoreTracing } from "./tracing.js";

export {
  SESSION_COUNT_INTERVAL_MS,
  SESSION_COUNT_MAX_KEYS,
  SESSION_COUNT_WAIT_MS,
} from "./session-count.js";

/** A store returned by `instrument()`: the same store, plus the registry its metrics live in. */
export type InstrumentedSessionStore = SessionStore & { readonly registry: Registry };

const HIT_OR_MISS = (found: boolean): Outcome => (found ? "hit" : "miss");
const OK = (): Outcome => "ok";
const NULL_IS_MISS = (value: unknown): Outcome => (value === null ? "miss" : "hit");

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
  const ops = new TracedOperations(recorder, new StoreTracing(options.tracer, backend));
  const inner = (store as { [internals]?: StoreInternals })[internals];
  const cleanups = inner === undefined ? [] : observeBackend(ops, backend, inner, metrics.sessions);

  safely(
    "backend info",
    () =>
      metrics.backendInfo.set(
        { backend, mode: inner?.mode ?? backend, fallback: String(inner?.fallback ?? false) },
        1,
      ),
    undefined,
  );

  // Payload sizes come from the backend, which holds the JSON already; a foreign store without
  // `internals` is measured here by serializing its values.
  const measurePayload = inner === undefined;
  const measurePayloadOf = (operation: PayloadOperation, value: unknown): void => {
    const bytes = jsonBytes(value);
    if (bytes !== undefined) recorder.payloadSize(operation, bytes);
  };
  const run = ops.run.bind(ops);
  const acquireLock = (...args: [id: string, options?: LockOptions]): Promise<Lock> =>
    acquireInstrumentedLock(ops, store, args, inner === undefined);

  let disconnected = false;
  const cleanup = (): void => {
    if (disconnected) return;
    disconnected = true;
    for (const remove of cleanups.splice(0)) safely("remove backend hook", remove, undefined);
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
              measurePayloadOf("get", value);
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
              measurePayloadOf("set", data);
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
              measurePayloadOf("update", value);
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
      return { [Symbol.asyncIterator]: () => instrumentIterator(ops, iterable) };
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

  return instrumented;
}

/**
 * Hooks the recorder to the backend's own reports (lock contention, retries and losses, node
 * errors, payload sizes) and adds the store to the sessions gauge; returns what undoes both.
 */
function observeBackend(
  ops: TracedOperations,
  backend: Backend,
  inner: StoreInternals,
  sessions: Parameters<typeof addSessionCountSource>[0],
): Array<() => void> {
  const { recorder, tracing } = ops;
  const cleanups: Array<() => void> = [];
  const removeObserver = safely(
    "observe backend",
    () =>
      inner.observe({
        lockContention: () => recorder.count("lockContention", 1),
        lockRetry: (attempt, reason) => {
          recorder.count("lockRetries", 1);
          tracing.lockRetry(attempt, reason);
        },
        lockLost: () => recorder.count("lockLost", 1),
        redlockNodeError: (node) => recorder.redlockNodeError(node),
        payloadSize: (operation, bytes) => recorder.payloadSize(operation, bytes),
      }),
    undefined,
  );
  if (removeObserver !== undefined) cleanups.push(removeObserver);
  const removeSource = safely(
    "sessions gauge",
    () => addSessionCountSource(sessions, sessionCountSource(backend, inner)),
    undefined,
  );
  if (removeSource !== undefined) cleanups.push(removeSource);
  return cleanups;
}

/** Bytes of `value` as JSON (UTF-8), for stores that do not report payload sizes themselves. */
function jsonBytes(value: unknown): number | undefined {
  try {
    const json = JSON.stringify(value);
    return json === undefined ? undefined : Buffer.byteLength(json, "utf8");
  } catch (error) {
    reportSwallowed("payload size of a foreign store", error);
    return undefined;
  }
}
