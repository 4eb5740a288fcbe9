import type {
  TaskMessageQueue,
  TaskStore,
} from "@modelcontextprotocol/sdk/experimental/tasks/interfaces.js";
import { Registry } from "prom-client";
import { createSessionStore } from "../../factory.js";
import { defaultLogger } from "../../options.js";
import type { Logger, SessionStore, SessionStoreOptions } from "../../types.js";
import {
  createMcpEventStore,
  type McpEventStore,
  type McpEventStoreOptions,
} from "../event-store.js";
import { mcpMetrics, redisAccessOf } from "../support.js";
import {
  createMcpTaskStores,
  type McpTaskStoreOptions,
  MemoryTaskMessageQueue,
  MemoryTaskStore,
} from "./task-store/index.js";

/** Options of `registerRedisBackedServices`: the store's options plus the MCP parts'. */
export interface McpServicesOptions
  extends SessionStoreOptions,
    Omit<McpEventStoreOptions, "registry">,
    Omit<McpTaskStoreOptions, "registry"> {
  /** Use the memory store whatever Redis does (same as `preferMemory`). @default false */
  forceMemorySessionStore?: boolean;
  /** Use this store instead of creating one; `close()` then leaves it open. */
  sessionStore?: SessionStore;
  /** Where the MCP counters go. @default the store's `registry` (instrumented stores), else a new one */
  registry?: Registry;
}

/** What `registerRedisBackedServices` returns. */
export interface McpServices {
  /** Memory or Redis (detected), instrumented unless `instrumentation: false`. */
  sessionStore: SessionStore;
  /** Per-session SDK `EventStore`s: `eventStore.forSession(id)`. */
  eventStore: McpEventStore;
  /** The SDK's experimental `TaskStore`: pass it to the server's options (`taskStore`). */
  taskStore: TaskStore;
  /** The SDK's experimental `TaskMessageQueue` (`taskMessageQueue` server option). */
  taskMessageQueue: TaskMessageQueue;
  /** Holds the store's metrics (when instrumented) and the MCP counters: serve it on /metrics. */
  registry: Registry;
  logger: Logger;
  /** Closes the event store and the session store (unless it was passed in). Idempotent. */
  close(): Promise<void>;
}

/** Anything that says when it closes: an `McpServer`, a `Server`, or a node `http.Server`. */
export type ClosableServer =
  | { server: { onclose?: () => void } }
  | { onclose?: () => void }
  | { once(event: "close", listener: () => void): unknown };

function hookClose(server: ClosableServer | null | undefined, close: () => Promise<void>): void {
  if (server === null || server === undefined) return;
  const run = () => {
    void close().catch(() => {});
  };
  // McpServer: its underlying Server carries onclose.
  const inner = (server as { server?: unknown }).server;
  const target =
    typeof inner === "object" && inner !== null && "connect" in inner
      ? (inner as { onclose?: () => void })
      : server;
  if ("connect" in target || "onclose" in target) {
    const protocol = target as { onclose?: () => void };
    const previous = protocol.onclose;
    protocol.onclose = () => {
      try {
        previous?.();
      } finally {
        run();
      }
    };
    return;
  }
  if (typeof (target as { once?: unknown }).once === "function") {
    (target as { once(event: "close", listener: () => void): unknown }).once("close", run);
  }
}

/**
 * The session store, event store, task store and task message queue of an MCP server, on Redis
 * when it answers (else in memory, with a warning), instrumented, and closed when `server`
 * closes (its existing `onclose` keeps running). Pass `null` as `server` to close them yourself.
 *
 * @example
 * const server = new McpServer({ name: "demo", version: "1.0.0" });
 * const services = await registerRedisBackedServices(server, { redisUrl: process.env.REDIS_URL });
 */
export async function registerRedisBackedServices(
  server: ClosableServer | null | undefined,
  options: McpServicesOptions = {},
): Promise<McpServices> {
  const owned = options.sessionStore === undefined;
  const sessionStore =
    options.sessionStore ??
    (await createSessionStore({
      ...options,
      preferMemory: Boolean(options.forceMemorySessionStore ?? options.preferMemory ?? false),
    }));
  const registry =
    options.registry ??
    (sessionStore as { registry?: Registry }).registry ??
    (options.instrumentation ? options.instrumentation.registry : undefined) ??
    new Registry();
  mcpMetrics(registry);
  const logger = options.logger ?? defaultLogger(options.verbose ?? false);
  const redis = redisAccessOf(sessionStore);
  const shared = { ...options, registry, defaultTtl: options.defaultTtl };
  let eventStore: McpEventStore;
  let tasks: ReturnType<typeof createMcpTaskStores>;
  try {
    eventStore = createMcpEventStore(redis, shared);
    tasks = createMcpTaskStores(redis, shared);
  } catch (err) {
    if (owned) await sessionStore.disconnect();
    throw err;
  }
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      eventStore.close();
      if (tasks.taskStore instanceof MemoryTaskStore) tasks.taskStore.clear();
      if (tasks.taskMessageQueue instanceof MemoryTaskMessageQueue) tasks.taskMessageQueue.clear();
      if (owned) await sessionStore.disconnect();
    })();
    return closing;
  };
  hookClose(server, close);
  return { sessionStore, eventStore, ...tasks, registry, logger, close };
}
