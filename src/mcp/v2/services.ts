import { randomBytes } from "node:crypto";
import { Registry } from "prom-client";
import { createSessionStore } from "../../factory.js";
import { DEFAULTS, defaultLogger } from "../../options.js";
import type { Logger, SessionStore, SessionStoreOptions } from "../../types.js";
import { createEventBus, type EventBus } from "../event-bus.js";
import { createHandleStore, type HandleStore, type HandleStoreOptions } from "../handles.js";
import {
  createRequestStates,
  type RequestStates,
  type RequestStatesOptions,
} from "../request-states.js";
import { redisAccessOf } from "../support.js";
import { createTaskStore, type TaskStore, type TaskStoreOptions } from "../tasks.js";
import { v2Metrics } from "./metrics.js";

type Shared = "redis" | "prefix" | "registry" | "logger" | "bus";

/** Options of `registerRedisBackedServices` (v2): the store's options plus each part's. */
export interface McpV2ServicesOptions extends SessionStoreOptions {
  /** Use the memory store whatever Redis does (same as `preferMemory`). @default false */
  forceMemorySessionStore?: boolean;
  /** Use this store instead of creating one; `close()` then leaves it open. */
  sessionStore?: SessionStore;
  /** Where every metric goes. @default the store's `registry` (instrumented stores), else a new one */
  registry?: Registry;
  /** Handle lifetimes and limits. @default HANDLE_DEFAULTS */
  handles?: Omit<HandleStoreOptions, Shared>;
  /**
   * Request-state keys and options. Without `keys`, a random key is made at start: states then
   * verify only in this process (a warning says so); give every instance the same keys.
   * @default { keys: random per process }
   */
  requestStates?: Partial<Omit<RequestStatesOptions, Shared>>;
  /** Task lifetimes. @default the task store's defaults */
  tasks?: Omit<TaskStoreOptions, Shared>;
  /** Errors thrown by bus listeners. @default a warning on the logger */
  onBusError?: (error: Error) => void;
}

/** What `registerRedisBackedServices` (v2) returns. */
export interface McpV2Services {
  /** Memory or Redis (detected), instrumented unless `instrumentation: false`. */
  sessionStore: SessionStore;
  /** A `ServerEventBus` across processes: `createMcpHandler(factory, { bus: eventBus })`. */
  eventBus: EventBus;
  /** Server-minted handles bound to a principal. */
  handles: HandleStore;
  /** Multi round-trip states, consumed at most once across instances. */
  requestStates: RequestStates;
  /** The tasks extension's store; status changes travel on `eventBus`. */
  tasks: TaskStore;
  /** Holds every metric: serve it on /metrics. */
  registry: Registry;
  logger: Logger;
  /** Closes every part, then the session store (unless it was passed in). Idempotent. */
  close(): Promise<void>;
}

/** A node `http.Server` (or anything that emits "close"): the services close with it. */
export type ClosableServer = { once(event: "close", listener: () => void): unknown };

function isServer(value: unknown): value is ClosableServer {
  return typeof (value as { once?: unknown } | null)?.once === "function";
}

/**
 * The shared state of a protocol 2026-07-28 server: session store, event bus, handles, request
 * states and tasks, on Redis when it answers (else in memory, with a warning), instrumented.
 * The seed's `(server, options)` call shape works too: the services then close when that
 * `http.Server` closes (an `McpServer` is per request under `createMcpHandler`, so it is not
 * tied to them).
 *
 * @example
 * const services = await registerRedisBackedServices({ redisUrl: process.env.REDIS_URL });
 * const handler = createMcpHandler(factory, { bus: services.eventBus });
 */
export async function registerRedisBackedServices(
  options?: McpV2ServicesOptions,
): Promise<McpV2Services>;
export async function registerRedisBackedServices(
  server: ClosableServer | object | null | undefined,
  options?: McpV2ServicesOptions,
): Promise<McpV2Services>;
export async function registerRedisBackedServices(
  first?: McpV2ServicesOptions | ClosableServer | object | null,
  second?: McpV2ServicesOptions,
): Promise<McpV2Services> {
  const seedShape = second !== undefined || isServer(first) || first === null;
  const options: McpV2ServicesOptions = (seedShape ? second : first) ?? {};
  const owned = options.sessionStore === undefined;
  const sessionStore =
    options.sessionStore ??
    (await createSessionStore({
      ...options,
      preferMemory: Boolean(options.forceMemorySessionStore ?? options.preferMemory ?? false),
    }));
  try {
    const services = await build(sessionStore, options, owned);
    if (seedShape && isServer(first)) first.once("close", () => void services.close());
    return services;
  } catch (err) {
    if (owned) await sessionStore.disconnect().catch(() => {});
    throw err;
  }
}

async function build(
  sessionStore: SessionStore,
  options: McpV2ServicesOptions,
  owned: boolean,
): Promise<McpV2Services> {
  const registry =
    options.registry ??
    (sessionStore as { registry?: Registry }).registry ??
    (options.instrumentation ? options.instrumentation.registry : undefined) ??
    new Registry();
  v2Metrics(registry);
  const logger = options.logger ?? defaultLogger(options.verbose ?? false);
  const redis = redisAccessOf(sessionStore);
  const prefix = redis?.prefix ?? options.prefix ?? DEFAULTS.prefix;
  const shared = { redis, prefix, registry, logger };
  const eventBus = await createEventBus({
    ...shared,
    ...(options.onBusError === undefined ? {} : { onerror: options.onBusError }),
  });
  const parts: Array<{ close(): Promise<void> }> = [eventBus];
  try {
    const handles = createHandleStore({ ...options.handles, ...shared });
    parts.push(handles);
    const requestStates = createRequestStates({
      ...options.requestStates,
      ...shared,
      keys: options.requestStates?.keys ?? processKey(logger),
    });
    parts.push(requestStates);
    const tasks = createTaskStore({
      ...options.tasks,
      ...shared,
      // Task events ride beside the SDK's change events; SDK listeners never see them.
      bus: {
        publish: (event) => eventBus.publish(event),
        subscribe: (listener) => eventBus.subscribeTaskStatus(listener),
      },
    });
    parts.push(tasks);
    let closing: Promise<void> | undefined;
    const close = () => {
      closing ??= (async () => {
        for (const part of parts.reverse()) await part.close().catch(() => {});
        if (owned) await sessionStore.disconnect();
      })();
      return closing;
    };
    return { sessionStore, eventBus, handles, requestStates, tasks, registry, logger, close };
  } catch (err) {
    for (const part of parts.reverse()) await part.close().catch(() => {});
    throw err;
  }
}

function processKey(logger: Logger): { current: Uint8Array } {
  logger.warn(
    "requestStates.keys not set: request states verify only in this process; give every instance the same keys",
  );
  return { current: randomBytes(32) };
}
