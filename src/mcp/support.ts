import type { Cluster, Redis } from "ioredis";
import { Counter, type Registry } from "prom-client";
import { checkId } from "../codec.js";
import { ErrorCode, SessionStoreError } from "../errors.js";
import { getOrCreateMetric } from "../telemetry/get-or-create-metric.js";
import { withTimeout } from "../timeout.js";
import { internals, type SessionStore, type StoreInternals } from "../types.js";

/** What the MCP stores need from a Redis-backed session store. */
export type RedisAccess = NonNullable<StoreInternals["redis"]>;
export type RedisClient = Redis | Cluster;

/**
 * Whether `value` is an id the MCP integration accepts: 1..`maxLength` visible ASCII characters,
 * checked by `codec.ts` (the session id pattern, 1..512); stream ids and task ids, which share a
 * key with a session id, keep a shorter `maxLength`.
 */
export function isValidId(value: unknown, maxLength = 512): value is string {
  if (typeof value !== "string" || value.length > maxLength) return false;
  try {
    checkId(value);
    return true;
  } catch {
    return false;
  }
}

/** The Redis client and key layout behind `store`, or `undefined` for a memory store. */
export function redisAccessOf(store: SessionStore): RedisAccess | undefined {
  const inner = (store as unknown as { [internals]?: StoreInternals })[internals];
  return inner?.redis;
}

/**
 * Runs one Redis call with the store's command timeout; any failure becomes
 * `ERR_BACKEND_UNAVAILABLE` (the cause kept), so no call hangs and callers branch on one code.
 */
export async function redisCall<T>(
  access: RedisAccess,
  what: string,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await withTimeout(run(), access.commandTimeout);
  } catch (cause) {
    if (cause instanceof SessionStoreError) throw cause;
    throw new SessionStoreError(
      ErrorCode.BACKEND_UNAVAILABLE,
      `Redis ${what} failed: ${message(cause)}`,
      {
        cause,
      },
    );
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A Lua script run through ioredis' `defineCommand` (EVALSHA, falling back to EVAL on NOSCRIPT). */
export interface LuaScript {
  /** The command name on the client: unique in the package (`mss...`). */
  readonly name: string;
  readonly numberOfKeys: number;
  readonly lua: string;
}

/** Declares a Lua script; `runScript` defines it on each client the first time it runs there. */
export function luaScript(name: string, numberOfKeys: number, lua: string): LuaScript {
  return { name, numberOfKeys, lua };
}

type Scripted = Record<string, ((...args: Array<string | number>) => Promise<unknown>) | undefined>;

/** Runs `script` on `client` (defining the command on first use). */
export function runScript(
  client: RedisClient,
  script: LuaScript,
  keys: string[],
  args: Array<string | number>,
): Promise<unknown> {
  const commands = client as unknown as Scripted;
  if (typeof commands[script.name] !== "function") {
    client.defineCommand(script.name, { numberOfKeys: script.numberOfKeys, lua: script.lua });
  }
  return (commands[script.name] as (...args: Array<string | number>) => Promise<unknown>)(
    ...keys,
    ...args,
  );
}

/** The counters of the MCP integration, registered once per registry. */
export interface McpMetrics {
  eventsStored: Counter<string>;
  eventsReplayed: Counter<string>;
  sessionsCreated: Counter<string>;
  sessionsRebuilt: Counter<string>;
  transportsEvicted: Counter<string>;
  tasksCreated: Counter<"status">;
  tasksFinished: Counter<"status">;
}

/** The counter `name` on `registry`: the one already registered (same type and labels), or a new one. */
export function counter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Counter<L> {
  // Several services may share one registry (one per process is the usual case).
  return getOrCreateMetric(
    registry,
    { name, type: "counter", labelNames },
    () => new Counter<L>({ name, help, labelNames, registers: [registry] }),
  );
}

const cache = new WeakMap<Registry, McpMetrics>();

/** The MCP counters on `registry`, created on first use. */
export function mcpMetrics(registry: Registry): McpMetrics {
  let metrics = cache.get(registry);
  if (metrics !== undefined) return metrics;
  metrics = {
    eventsStored: counter(
      registry,
      "mcp_session_store_mcp_events_stored_total",
      "SSE events written to the event store (resumability).",
    ),
    eventsReplayed: counter(
      registry,
      "mcp_session_store_mcp_events_replayed_total",
      "SSE events sent again to a client that resumed with Last-Event-ID.",
    ),
    sessionsCreated: counter(
      registry,
      "mcp_session_store_mcp_sessions_created_total",
      "MCP sessions initialized on this instance.",
    ),
    sessionsRebuilt: counter(
      registry,
      "mcp_session_store_mcp_sessions_rebuilt_total",
      "MCP sessions rebuilt on this instance from the shared store (adopted from another instance, or after eviction).",
    ),
    transportsEvicted: counter(
      registry,
      "mcp_session_store_mcp_transports_evicted_total",
      "Local transports closed because they were idle or the cache was full (the session stays in the store).",
    ),
    tasksCreated: counter(
      registry,
      "mcp_session_store_mcp_tasks_created_total",
      "Tasks created, by initial status.",
      ["status"] as const,
    ),
    tasksFinished: counter(
      registry,
      "mcp_session_store_mcp_tasks_finished_total",
      "Tasks that reached a terminal status (completed, failed, cancelled).",
      ["status"] as const,
    ),
  };
  cache.set(registry, metrics);
  return metrics;
}

/** Runs a metric update; telemetry never throws into the caller. */
export function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // A metric must never change a result.
  }
}
