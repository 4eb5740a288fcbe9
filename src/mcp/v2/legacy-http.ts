import {
  type AuthInfo,
  isInitializeRequest,
  SUPPORTED_PROTOCOL_VERSIONS,
  type WebStandardStreamableHTTPServerTransport,
  type WebStandardStreamableHTTPServerTransportOptions,
} from "@modelcontextprotocol/server";
import {
  createMcpEventStore,
  type McpEventStore,
  type McpEventStoreOptions,
} from "../event-store.js";
import {
  createSessionfulHandler,
  type SessionfulHandler,
  type SessionfulHandlerOptions,
  type SessionfulServices,
} from "../http/handler.js";
import type { SdkBinding } from "../http/sdk.js";
import { redisAccessOf } from "../support.js";
import { RoutedServerTransport } from "./routed-transport.js";
import type { McpV2Services } from "./services.js";

/** A v2 server the bridge can connect to a session transport: an `McpServer` or a `Server`. */
export interface LegacyConnectableServer {
  connect(transport: WebStandardStreamableHTTPServerTransport): Promise<void>;
  close(): Promise<void>;
}

/** What the bridge needs of the services: `McpV2Services` has it all but the event store. */
export type LegacyBridgeServices = Pick<SessionfulServices, "sessionStore" | "registry" | "logger">;

/**
 * Options of `createLegacyHttpHandler`: those of the SDK v1 `createMcpHttpHandler`, plus where
 * the session event logs (resumability) live.
 */
export interface McpLegacyHttpHandlerOptions<S extends LegacyBridgeServices = McpV2Services>
  extends Omit<SessionfulHandlerOptions<S, LegacyConnectableServer, AuthInfo>, "transportOptions"> {
  /**
   * The session event logs. @default one the handler creates beside the session store (Redis
   * when the store is on Redis) with `eventStoreOptions`, and closes with the handler
   */
  eventStore?: McpEventStore;
  /** Options of the event store the handler creates. @default { eventTtl: 3600, maxEventsPerSession: 1000 } */
  eventStoreOptions?: Omit<McpEventStoreOptions, "registry">;
  /** Passed to every transport (DNS rebinding protection, JSON responses, retry, keep-alive). */
  transportOptions?: Pick<
    WebStandardStreamableHTTPServerTransportOptions,
    | "allowedHosts"
    | "allowedOrigins"
    | "enableDnsRebindingProtection"
    | "enableJsonResponse"
    | "retryInterval"
    | "keepAliveMs"
  >;
}

/** A node:http / Express handler for 2025-era sessions on SDK v2. */
export interface McpLegacyHttpHandler extends SessionfulHandler<AuthInfo> {}

/** SDK v2's part of the handler: its legacy transport, `initialize` guard and versions. */
const sdkV2: SdkBinding = {
  createTransport: (options, answers) =>
    new RoutedServerTransport(
      options as WebStandardStreamableHTTPServerTransportOptions,
      answers,
    ) as never,
  isInitializeRequest,
  supportedProtocolVersions: SUPPORTED_PROTOCOL_VERSIONS,
};

/**
 * The sessionful 2025-era handler on SDK v2's `WebStandardStreamableHTTPServerTransport`: the
 * same handler core as the SDK v1 `createMcpHttpHandler` (sessions shared through the store and
 * rebuilt on any instance, resumability, server-to-client requests answered on any instance,
 * standalone streams pushed across instances), for the requests that the SDK's
 * `isLegacyRequest` classifies as legacy. Modern (2026-07-28) requests go to `createMcpHandler`.
 * Throws `ERR_INVALID_ARGUMENT` for invalid options.
 *
 * @example
 * const services = await registerRedisBackedServices({ redisUrl: process.env.REDIS_URL });
 * const legacy = createLegacyHttpHandler({ services, createServer: () => buildServer() });
 * const modern = createMcpHandler(buildServer, { bus: services.eventBus, legacy: "reject" });
 * // per request: (await isLegacyRequest(webRequest)) ? legacy(req, res, body) : modern.fetch(webRequest)
 */
export function createLegacyHttpHandler<S extends LegacyBridgeServices = McpV2Services>(
  options: McpLegacyHttpHandlerOptions<S>,
): McpLegacyHttpHandler {
  const services = options.services as LegacyBridgeServices | undefined;
  const owned =
    options.eventStore === undefined &&
    options.resumability !== false &&
    services?.sessionStore !== undefined
      ? createMcpEventStore(redisAccessOf(services.sessionStore), {
          ...options.eventStoreOptions,
          registry: services.registry,
        })
      : undefined;
  const eventStore = options.eventStore ?? owned;
  try {
    return createSessionfulHandler(options, sdkV2, {
      ...(eventStore === undefined ? {} : { eventStore }),
      onClose: async () => owned?.close(),
    });
  } catch (err) {
    owned?.close();
    throw err;
  }
}
