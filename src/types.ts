import type { Tracer } from "@opentelemetry/api";
import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from "ioredis";
import type { Registry } from "prom-client";

/** Which backend holds the sessions. */
export type Backend = "memory" | "redis";

/** Where log lines go. `console` and pino loggers both fit. */
export interface Logger {
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

/** Options of a lock acquisition. */
export interface LockOptions {
  /**
   * Lease in milliseconds.
   * @default options.lockTimeout (30000)
   */
  ttl?: number;
  /**
   * Longest wait for the lock in milliseconds; `0` tries once.
   * @default the lease (`ttl`)
   */
  waitTimeout?: number;
  /** Cancels the wait; the acquisition then rejects with `ERR_ABORTED`. */
  signal?: AbortSignal;
}

/** A held lock (a lease). */
export interface Lock {
  /** The session id the lock protects. */
  readonly resource: string;
  /** Strictly increasing per resource across acquisitions: pass it to the system you write to. */
  readonly fencingToken: number;
  /** End of the lease, epoch ms, already reduced by the clock-drift allowance. */
  readonly expiresAt: number;
  /** Aborted (reason: `ERR_LOCK_LOST`) when the lease is lost or released. */
  readonly signal: AbortSignal;
  /** Renews the lease for `ttlMs` (default: the original lease). Rejects with `ERR_LOCK_LOST`. */
  extend(ttlMs?: number): Promise<void>;
  /** Gives the lock up. Idempotent; never waits for a retry window. */
  release(): Promise<void>;
}

/** Health of a store, as `/readyz` reports it. */
export interface StoreHealth {
  ok: boolean;
  backend: Backend;
  latencyMs?: number;
  detail?: string;
}

/** Options of `setSession`/`updateSession`. */
export interface SetOptions {
  /** Time to live in seconds. @default options.defaultTtl */
  ttl?: number;
}

/** Options of `listSessions`. */
export interface ListOptions {
  /** Stop after this many ids. @default unlimited */
  limit?: number;
}

/**
 * Shared session state. The memory and Redis backends behave the same; one conformance suite proves it.
 */
export interface SessionStore {
  readonly backend: Backend;
  /** The prom-client registry of an instrumented store (the factories instrument by default). */
  readonly registry?: Registry;
  /** The session's data, or `null` when absent or expired. */
  getSession<T = unknown>(id: string): Promise<T | null>;
  /** Stores `data` (any JSON value) with a TTL in seconds. */
  setSession<T = unknown>(id: string, data: T, options?: SetOptions): Promise<void>;
  /**
   * Atomic read-modify-write against every writer on every instance. `fn` may run more than once;
   * it gets `null` when the session does not exist. Rejects with `ERR_CONFLICT` after bounded retries.
   */
  updateSession<T = unknown>(
    id: string,
    fn: (current: T | null) => T | Promise<T>,
    options?: SetOptions,
  ): Promise<T>;
  /** `true` if the session existed. */
  deleteSession(id: string): Promise<boolean>;
  hasSession(id: string): Promise<boolean>;
  /** Slides the expiry to `ttl` seconds (default `defaultTtl`); `false` if the session is absent. */
  touchSession(id: string, ttl?: number): Promise<boolean>;
  /** Seconds left (may be fractional), `null` if absent. */
  getSessionTtl(id: string): Promise<number | null>;
  /** Ids of live sessions under this store's prefix, paginated underneath. Order is unspecified. */
  listSessions(options?: ListOptions): AsyncIterable<string>;
  /** Takes the lock of a session (see `Lock`). */
  acquireLock(id: string, options?: LockOptions): Promise<Lock>;
  /** Runs `fn` under the lock, extending the lease at 2/3 of it, and releases it afterwards. */
  withLock<T>(id: string, fn: (lock: Lock) => Promise<T>, options?: LockOptions): Promise<T>;
  health(): Promise<StoreHealth>;
  /** Closes connections and timers. Idempotent. Every later call rejects with `ERR_STORE_CLOSED`. */
  disconnect(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of `instrument()`. */
export interface InstrumentOptions {
  /** prom-client registry. @default a new `Registry`, exposed as `store.registry` */
  registry?: Registry;
  /** OpenTelemetry tracer. @default trace.getTracer("mcp-session-store") */
  tracer?: Tracer;
  /** Buckets of the operation histograms, seconds. */
  durationBuckets?: number[];
  /** Buckets of the lock histograms, seconds. */
  lockBuckets?: number[];
}

/** Cluster mode through the `redis` option: the seed nodes and ioredis `ClusterOptions`. */
export interface RedisClusterConfig {
  clusterNodes: ClusterNode[];
  clusterOptions?: ClusterOptions;
}

/** A node of the Redlock quorum: a URL or an ioredis client. */
export type LockNode = string | Redis;

/** Options of the factories. Every default is applied with `??`. */
export interface SessionStoreOptions {
  /**
   * Redis URL (`redis://`, `rediss://` for TLS, with `user:password@` if needed). An empty string,
   * here or in `REDIS_URL`, counts as unset. Checked only when a Redis store is made (a memory
   * store never looks at it). Printed redacted: the password and every query value but `db`,
   * `family`, `tls`, `connectTimeout`, `commandTimeout`, `keepAlive` become `***`.
   * @default process.env.REDIS_URL ?? "redis://localhost:6379"
   */
  redisUrl?: string;
  /** An existing ioredis `Redis`/`Cluster` (not closed by the store), or ioredis options (Sentinel, Cluster nodes). */
  redis?: Redis | Cluster | RedisOptions | RedisClusterConfig;
  /** @default "mcp:session:" */
  prefix?: string;
  /** Session TTL in seconds. @default 3600 */
  defaultTtl?: number;
  /** Lock lease in milliseconds. @default 30000 */
  lockTimeout?: number;
  /**
   * Independent Redis masters for Redlock. The store starts when a quorum (floor(N/2)+1) answers
   * within `connectTimeout`: each missing node is named in a warning, counted in
   * `mcp_session_store_redlock_node_errors_total` and joins when it answers. Fewer than a quorum:
   * the factory rejects with `ERR_BACKEND_UNAVAILABLE` naming each node and its cause.
   * @default the data node alone
   */
  lockNodes?: LockNode[];
  /** Force the memory store. @default false */
  preferMemory?: boolean;
  /** What to do when Redis is unreachable at start. @default "memory" */
  fallback?: "memory" | "error";
  /** Detection/connect timeout in ms. @default 1000 */
  connectTimeout?: number;
  /**
   * Longest wait for Redis before `ERR_BACKEND_UNAVAILABLE`, ms: per command, and per
   * `updateSession` call in total, counting the time the updates queued before it on the same id
   * waited for Redis (not the time spent in their functions). A write that failed this way may
   * still be applied, but never after a later write of the same store to the same session.
   * @default 2000
   */
  commandTimeout?: number;
  /** Largest serialized session in bytes. @default 1048576 */
  maxPayloadBytes?: number;
  /** Log store selection and fallbacks. @default false */
  verbose?: boolean;
  /** Where logs go. @default console (info silent unless verbose; warnings always) */
  logger?: Logger;
  /** `false`, or instrumentation options. @default on (a new registry) */
  instrumentation?: false | InstrumentOptions;
}

/**
 * @internal Hooks a backend calls so the instrumentation can count what only the backend sees.
 * Every hook is optional and must never throw into the backend (callers wrap them).
 */
export interface StoreObserver {
  /** An acquisition attempt found the lock held by someone else. */
  lockContention?(): void;
  /** An acquisition attempt failed and will be retried (attempt is 1-based). */
  lockRetry?(attempt: number, reason: "held" | "quorum"): void;
  /** A held lease was lost (expired unextended, or an extension failed). */
  lockLost?(): void;
  /** One Redlock node failed a command (node: redacted host:port). */
  redlockNodeError?(node: string): void;
  /** Bytes (UTF-8) of the session JSON read by a get hit or written by set/update. */
  payloadSize?(operation: "get" | "set" | "update", bytes: number): void;
}

/** @internal Key of `StoreInternals` on every store (and on an instrumented store, the inner one's). */
export const internals: unique symbol = Symbol.for("mcp-session-store.internals") as never;

/** @internal What a backend exposes to the instrumentation and the MCP integration. */
export interface StoreInternals {
  /** "memory", or the Redis deployment mode. */
  mode: "memory" | "standalone" | "sentinel" | "cluster";
  /** true when this is a memory store chosen because Redis was unreachable. */
  fallback: boolean;
  /** Adds an observer; returns the function that removes it. */
  observe(observer: StoreObserver): () => void;
  /** Counts live sessions; Redis scans at most `maxKeys` keys and returns null past it. */
  countSessions(options?: { maxKeys?: number }): Promise<number | null>;
  /** Redis only: the data client and the key layout, for the MCP event and task stores. */
  redis?: {
    client: import("ioredis").Redis | import("ioredis").Cluster;
    /** `{prefix}{<id>}` plus an optional `:suffix`. */
    key(id: string, suffix?: string): string;
    prefix: string;
    commandTimeout: number;
  };
}
