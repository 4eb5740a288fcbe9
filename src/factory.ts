import { Redis } from "ioredis";
import { isSessionStoreError } from "./errors.js";
import { type ResolvedOptions, redisUrlFrom, resolveOptions } from "./options.js";
import { MemorySessionStore } from "./stores/memory.js";
import { RedisSessionStore } from "./stores/redis.js";
import { type InstrumentedSessionStore, instrument } from "./telemetry/instrument.js";
import { withTimeout } from "./timeout.js";
import type { SessionStore, SessionStoreOptions } from "./types.js";

/** Options that turn instrumentation off: the factories then return the bare store. */
type Uninstrumented = SessionStoreOptions & { instrumentation: false };

function finish(store: SessionStore, options: ResolvedOptions): SessionStore {
  const finished =
    options.instrumentation === false ? store : instrument(store, options.instrumentation ?? {});
  // Counted only now: the metrics observe the store from here on.
  if (store instanceof RedisSessionStore) store.reportStartErrors();
  return finished;
}

/**
 * A store that keeps sessions in this process: for development, tests and single instances.
 * Same semantics, limits, errors and metrics as the Redis store.
 *
 * @example
 * const store = createMemorySessionStore({ prefix: "dev:", defaultTtl: 3600 });
 */
export function createMemorySessionStore(options: Uninstrumented): SessionStore;
export function createMemorySessionStore(options?: SessionStoreOptions): InstrumentedSessionStore;
export function createMemorySessionStore(options?: SessionStoreOptions): SessionStore {
  const resolved = resolveOptions(options);
  return finish(new MemorySessionStore(resolved), resolved);
}

/**
 * A Redis store, connected within `connectTimeout`; rejects with `ERR_BACKEND_UNAVAILABLE` when
 * Redis cannot be reached (no fallback).
 *
 * @example
 * const store = await createRedisSessionStore({ redisUrl: "redis://localhost:6379" });
 */
export async function createRedisSessionStore(
  options?: SessionStoreOptions,
): Promise<SessionStore> {
  const resolved = resolveOptions(options);
  const store = new RedisSessionStore(resolved);
  await store.connect();
  return finish(store, resolved);
}

/**
 * Redis when it answers within `connectTimeout`, else (by default) a memory store with a warning
 * that always prints; with `fallback: "error"` it rejects with `ERR_BACKEND_UNAVAILABLE` instead.
 * `preferMemory: true` skips detection.
 *
 * @example
 * const store = await createSessionStore({ redisUrl: "redis://localhost:6379", prefix: "mcp:", defaultTtl: 3600, verbose: true });
 */
export function createSessionStore(options: Uninstrumented): Promise<SessionStore>;
export function createSessionStore(
  options?: SessionStoreOptions,
): Promise<InstrumentedSessionStore>;
export async function createSessionStore(options?: SessionStoreOptions): Promise<SessionStore> {
  const resolved = resolveOptions(options);
  const { logger } = resolved;
  if (resolved.preferMemory) {
    logger.info("Using the memory session store (preferMemory)");
    return finish(new MemorySessionStore(resolved), resolved);
  }
  const store = new RedisSessionStore(resolved);
  try {
    await store.connect();
    logger.info(`Using the Redis session store at ${store.describe()}`);
    return finish(store, resolved);
  } catch (err) {
    if (resolved.fallback === "error") throw err;
    const reason = isSessionStoreError(err) ? err.message : String(err);
    logger.warn(
      `${reason}; falling back to the in-memory session store (sessions are neither shared between instances nor kept across restarts; preferMemory: true uses it without trying Redis)`,
    );
    return finish(new MemorySessionStore(resolved, { fallback: true }), resolved);
  }
}

/**
 * Whether a Redis server answers PING at `url` within `timeoutMs` (default 1000). Never throws,
 * never waits past the timeout, and closes its connection.
 *
 * @example
 * if (await isRedisAvailable("redis://localhost:6379")) { ... }
 */
export async function isRedisAvailable(
  url?: string,
  options?: { timeoutMs?: number },
): Promise<boolean> {
  let client: Redis | undefined;
  try {
    const target = redisUrlFrom(url);
    const timeoutMs = options?.timeoutMs ?? 1000;
    if (!/^rediss?:\/\//.test(target) || !(timeoutMs > 0)) return false;
    client = new Redis(target, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on("error", () => {
      // The answer is the boolean; connection errors are expected here.
    });
    const probe = client.connect().then(() => (client as Redis).ping());
    probe.catch(() => undefined);
    return (await withTimeout(probe, timeoutMs)) === "PONG";
  } catch {
    return false;
  } finally {
    client?.disconnect();
  }
}
