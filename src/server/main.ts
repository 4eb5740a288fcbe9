/**
 * The reference MCP server (`npm start`): one `/mcp` endpoint for both protocol eras. Requests of
 * revision 2026-07-28 go to SDK v2's `createMcpHandler` with the shared services of
 * `mcp-session-store/mcp/v2` (event bus, handles, request states, tasks); requests that the
 * SDK's `isLegacyRequest` classifies (2025-11-25 and older) go to the shared sessions of
 * `createLegacyHttpHandler`, the sessionful bridge on SDK v2's transport. Prometheus metrics on `/metrics`, `/healthz` and `/readyz`, demo tools
 * that use the store, and a graceful shutdown on SIGTERM/SIGINT. Configured by environment
 * variables (see `loadConfig` and docs/server.md).
 */
import { randomBytes } from "node:crypto";
import { McpServer } from "@modelcontextprotocol/server";
import { collectDefaultMetrics } from "prom-client";
import { printable } from "../codec.js";
import { createMemorySessionStore, createRedisSessionStore } from "../factory.js";
import {
  createLegacyHttpHandler,
  type McpV2Services,
  redisAccessOf,
  registerRedisBackedServices,
} from "../mcp/v2/index.js";
import { redactUrl } from "../options.js";
import { internals, type Logger, type SessionStore, type StoreInternals } from "../types.js";
import { explainRedisFailure, probeRedis, RedisErrorWatch } from "./causes.js";
import { ConfigError, loadConfig, type ServerConfig } from "./config.js";
import { CONFORMANCE_CAPABILITIES, registerConformance } from "./conformance.js";
import { createHttpApp } from "./http.js";
import { explainListenError } from "./listen.js";
import { createModernHandler } from "./modern.js";
import { registerDemoTools } from "./tools.js";

/** Longest log line body: request data may reach a message, and must not flood the log. */
const MAX_LOG_CHARS = 2000;

/** Every line is one line: control characters escaped, length capped (no forged lines). */
function line(message: string, args: unknown[]): string {
  const rest = args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ");
  return `[mcp-server] ${printable(rest === "" ? message : `${message} ${rest}`, MAX_LOG_CHARS)}`;
}

const logger: Logger = {
  info: (message, ...args) => console.info(line(message, args)),
  warn: (message, ...args) => console.warn(line(message, args)),
  error: (message, ...args) => console.error(line(message, args)),
};

/** Where Redis is looked for: REDIS_URL, else the local default that SESSION_STORE=auto probes. */
function redisUrlOf(config: ServerConfig): string {
  return config.redisUrl ?? "redis://localhost:6379";
}

/** The library logs store selection through this logger; the server prints its own line. */
function storeLogger(config: ServerConfig): Logger {
  return { info: config.verbose ? logger.info : () => {}, warn: logger.warn, error: logger.error };
}

/** The session store and the shared services of both eras (bus, handles, request states, tasks). */
async function openServices(config: ServerConfig): Promise<McpV2Services> {
  const services = await registerRedisBackedServices({
    // Always explicit, so the library never reads REDIS_URL (empty or not) on its own.
    redisUrl: redisUrlOf(config),
    forceMemorySessionStore: config.store === "memory",
    fallback: config.store === "auto" ? "memory" : "error",
    prefix: config.keyPrefix,
    defaultTtl: config.sessionTtl,
    ...(config.lockNodes === undefined ? {} : { lockNodes: config.lockNodes }),
    logger: storeLogger(config),
    // Without REQUEST_STATE_KEY a random key: on memory there is one process, so it loses nothing.
    requestStates: {
      keys: config.requestStateKeys ?? {
        current: randomBytes(32).toString("base64url"),
        previous: [],
      },
    },
  });
  if (config.requestStateKeys === undefined && services.sessionStore.backend === "redis") {
    // A second instance would refuse this one's states.
    logger.warn(
      "REQUEST_STATE_KEY is not set: multi round-trip states verify on this instance only; give every instance the same key",
    );
  }
  return services;
}

/** The prefix of the demo tools' own data: outside the session prefix, so not counted as sessions. */
export function toolPrefixOf(keyPrefix: string): string {
  return `${keyPrefix.replace(/:$/, "")}-tools:`;
}

/** The demo tools' data (shared counters) lives in its own store, on the same backend. */
async function openToolStore(config: ServerConfig, services: McpV2Services): Promise<SessionStore> {
  const options = {
    redisUrl: redisUrlOf(config),
    prefix: toolPrefixOf(config.keyPrefix),
    instrumentation: false as const,
    logger: storeLogger(config),
  };
  if (services.sessionStore.backend === "memory") return createMemorySessionStore(options);
  return createRedisSessionStore(options);
}

function describeStore(config: ServerConfig, services: McpV2Services): string {
  const store = services.sessionStore;
  const info = (store as unknown as Record<symbol, StoreInternals | undefined>)[internals];
  if (store.backend === "memory") {
    if (info?.fallback) {
      return `memory (SESSION_STORE=auto and Redis at ${redactUrl(config.redisUrl ?? "redis://localhost:6379")} did not answer; sessions are not shared)`;
    }
    return `memory (${config.storeReason})`;
  }
  const where = redactUrl(config.redisUrl ?? "redis://localhost:6379");
  const locks =
    config.lockNodes === undefined
      ? "locks on the data node"
      : `Redlock over ${config.lockNodes.length} nodes`;
  return `redis at ${where}, ${info?.mode ?? "standalone"}, ${locks} (${config.storeReason})`;
}

function createServerFactory(
  config: ServerConfig,
  services: McpV2Services,
  toolStore: SessionStore,
  instance: string,
) {
  return () => {
    const conformance = config.profile === "conformance";
    const server = new McpServer(
      { name: "mcp-session-store-reference", version: "0.1.0" },
      { capabilities: { logging: {}, ...(conformance ? CONFORMANCE_CAPABILITIES : {}) } },
    );
    registerDemoTools(server, {
      store: services.sessionStore,
      data: toolStore,
      sessionTtl: config.sessionTtl,
      instance,
    });
    if (conformance) registerConformance(server);
    return server;
  };
}

async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      logger.error(`configuration: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }

  // Before the store: the ioredis instrumentation must see the Redis clients being created.
  const telemetry = config.telemetry
    ? await (await import("../telemetry/sdk.js")).startTelemetry({
        serviceName: process.env.OTEL_SERVICE_NAME ?? "mcp-session-store-server",
      })
    : undefined;

  let services: McpV2Services;
  let toolStore: SessionStore;
  try {
    services = await openServices(config);
  } catch (err) {
    // ioredis rejects with generic messages; one more connection attempt shows the cause.
    const cause = (await probeRedis(redisUrlOf(config)).catch(() => undefined)) ?? err;
    logger.error(`session store unavailable: ${explainRedisFailure(cause, redisUrlOf(config))}`);
    await telemetry?.shutdown().catch(() => {});
    process.exit(1);
  }
  try {
    toolStore = await openToolStore(config, services);
  } catch (err) {
    logger.error(`demo tools' store unavailable: ${explainRedisFailure(err, redisUrlOf(config))}`);
    await services.close().catch(() => {});
    await telemetry?.shutdown().catch(() => {});
    process.exit(1);
  }
  collectDefaultMetrics({ register: services.registry });
  const redis = redisAccessOf(services.sessionStore);
  const watch = redis === undefined ? undefined : new RedisErrorWatch(redis.client);

  const instance = `${config.host}:${config.port}`;
  const handler = createLegacyHttpHandler({
    services,
    createServer: createServerFactory(config, services, toolStore, instance),
    sessionTtl: config.sessionTtl,
    maxBodyBytes: config.maxBodyBytes,
    maxSessionRecordBytes: config.maxSessionRecordBytes,
    maxLocalSessionBytes: config.maxLocalSessionBytes,
    transportOptions: { retryInterval: config.sseRetryMs },
    logger,
  });
  const modern = createModernHandler({ config, services, instance, logger });
  const app = createHttpApp({
    config,
    handler,
    modern,
    store: services.sessionStore,
    registry: services.registry,
    logger,
    explainUnready: (detail) =>
      watch === undefined
        ? printable(detail ?? "unavailable", 300)
        : explainRedisFailure(watch.recent() ?? new Error(detail), redisUrlOf(config)),
  });

  try {
    await new Promise<void>((resolve, reject) => {
      app.server.once("error", reject);
      app.server.listen(config.port, config.host, () => {
        app.server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    logger.error(explainListenError(err, config.host, config.port));
    await handler.close().catch(() => {});
    await modern.close().catch(() => {});
    await toolStore.disconnect().catch(() => {});
    await services.close().catch(() => {});
    await telemetry?.shutdown().catch(() => {});
    process.exit(1);
  }
  const address = app.server.address();
  const port = typeof address === "object" && address !== null ? address.port : config.port;
  logger.info(`session store: ${describeStore(config, services)}`);
  logger.info(
    `listening on http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}/mcp (protocol 2026-07-28 on SDK v2, 2025-11-25 and older with shared sessions; profile ${config.profile}, pid ${process.pid})`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${signal}: draining (up to ${config.shutdownTimeoutMs} ms)`);
    let code = 0;
    try {
      const { interrupted } = await app.drain(config.shutdownTimeoutMs);
      if (interrupted > 0) {
        logger.warn(`${interrupted} request(s) still running at the deadline were cut`);
      }
      await handler.close();
      await modern.close();
      await toolStore.disconnect();
      await services.close();
      await telemetry?.shutdown();
    } catch (err) {
      const why =
        services.sessionStore.backend === "redis"
          ? explainRedisFailure(err, redisUrlOf(config))
          : err instanceof Error
            ? err.message
            : String(err);
      logger.error(`shutdown: ${why}`);
      code = 1;
    }
    app.server.closeAllConnections();
    logger.info("stopped");
    process.exit(code);
  };
  // `on`, not `once`: Ctrl-C on `npm start` reaches this process twice (from the terminal and
  // from scripts/start.mjs), and a second signal without a listener would kill it mid-drain.
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

await main();
