/**
 * The reference MCP server (`npm start`): Streamable HTTP on `/mcp` with sessions shared through
 * the session store, Prometheus metrics on `/metrics`, `/healthz` and `/readyz`, demo tools that
 * use the store, and a graceful shutdown on SIGTERM/SIGINT. Configured by environment variables
 * (see `loadConfig` and the README).
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { collectDefaultMetrics } from "prom-client";
import {
  createMcpHttpHandler,
  type McpServices,
  registerRedisBackedServices,
} from "../mcp/index.js";
import { redactUrl } from "../options.js";
import { internals, type Logger, type StoreInternals } from "../types.js";
import { ConfigError, loadConfig, type ServerConfig } from "./config.js";
import { CONFORMANCE_CAPABILITIES, registerConformance } from "./conformance.js";
import { createHttpApp } from "./http.js";
import { registerDemoTools } from "./tools.js";

const logger: Logger = {
  info: (message, ...args) => console.info(`[mcp-server] ${message}`, ...args),
  warn: (message, ...args) => console.warn(`[mcp-server] ${message}`, ...args),
  error: (message, ...args) => console.error(`[mcp-server] ${message}`, ...args),
};

/** The library logs store selection through this logger; the server prints its own line. */
const storeLogger: Logger = { info: () => {}, warn: logger.warn, error: logger.error };

async function openServices(config: ServerConfig): Promise<McpServices> {
  return registerRedisBackedServices(null, {
    ...(config.redisUrl === undefined ? {} : { redisUrl: config.redisUrl }),
    forceMemorySessionStore: config.store === "memory",
    fallback: config.store === "auto" ? "memory" : "error",
    prefix: config.keyPrefix,
    defaultTtl: config.sessionTtl,
    ...(config.lockNodes === undefined ? {} : { lockNodes: config.lockNodes }),
    logger: storeLogger,
  });
}

function describeStore(config: ServerConfig, services: McpServices): string {
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

function createServerFactory(config: ServerConfig, services: McpServices, instance: string) {
  return () => {
    const conformance = config.profile === "conformance";
    const server = new McpServer(
      { name: "mcp-session-store-reference", version: "0.1.0" },
      {
        capabilities: {
          logging: {},
          tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } },
          ...(conformance ? CONFORMANCE_CAPABILITIES : {}),
        },
        taskStore: services.taskStore,
        taskMessageQueue: services.taskMessageQueue,
      },
    );
    registerDemoTools(server, {
      store: services.sessionStore,
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

  let services: McpServices;
  try {
    services = await openServices(config);
  } catch (err) {
    logger.error(
      `session store unavailable: ${err instanceof Error ? err.message : String(err)} (SESSION_STORE=${config.store})`,
    );
    await telemetry?.shutdown().catch(() => {});
    process.exit(1);
  }
  collectDefaultMetrics({ register: services.registry });

  const instance = `${config.host}:${config.port}`;
  const handler = createMcpHttpHandler({
    services,
    createServer: createServerFactory(config, services, instance),
    sessionTtl: config.sessionTtl,
    maxBodyBytes: config.maxBodyBytes,
    transportOptions: { retryInterval: config.sseRetryMs },
    logger,
  });
  const app = createHttpApp({
    config,
    handler,
    store: services.sessionStore,
    registry: services.registry,
    logger,
  });

  await new Promise<void>((resolve, reject) => {
    app.server.once("error", reject);
    app.server.listen(config.port, config.host, () => {
      app.server.off("error", reject);
      resolve();
    });
  });
  const address = app.server.address();
  const port = typeof address === "object" && address !== null ? address.port : config.port;
  logger.info(`session store: ${describeStore(config, services)}`);
  logger.info(
    `listening on http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}/mcp (profile ${config.profile}, pid ${process.pid})`,
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
      await services.close();
      await telemetry?.shutdown();
    } catch (err) {
      logger.error(`shutdown: ${err instanceof Error ? err.message : String(err)}`);
      code = 1;
    }
    app.server.closeAllConnections();
    logger.info("stopped");
    process.exit(code);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}

await main();
