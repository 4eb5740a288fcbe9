import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type {
  WebStandardStreamableHTTPServerTransport,
  WebStandardStreamableHTTPServerTransportOptions,
} from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import {
  isInitializeRequest,
  SUPPORTED_PROTOCOL_VERSIONS,
} from "@modelcontextprotocol/sdk/types.js";
import {
  createSessionfulHandler,
  type SessionfulHandler,
  type SessionfulHandlerOptions,
} from "../http/handler.js";
import type { SdkBinding } from "../http/sdk.js";
import { RoutedServerTransport } from "./routed-transport.js";
import type { McpServices } from "./services.js";

/** A server the handler can connect to a transport: an `McpServer` or a low-level `Server`. */
export interface ConnectableServer {
  connect(transport: WebStandardStreamableHTTPServerTransport): Promise<void>;
  close(): Promise<void>;
}

/**
 * Options of `createMcpHttpHandler`. `createServer` is called at `initialize`, and again on any
 * instance that rebuilds the session: pass `services.taskStore` and `services.taskMessageQueue`
 * to the server's options to share tasks.
 */
export interface McpHttpHandlerOptions
  extends Omit<
    SessionfulHandlerOptions<McpServices, ConnectableServer, AuthInfo>,
    "transportOptions"
  > {
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

/** A node:http / Express handler with shared sessions. */
export interface McpHttpHandler extends SessionfulHandler<AuthInfo> {}

/** SDK v1's part of the handler: its transport, its `initialize` guard, its protocol versions. */
const sdkV1: SdkBinding = {
  createTransport: (options, answers) =>
    new RoutedServerTransport(
      options as WebStandardStreamableHTTPServerTransportOptions,
      answers,
    ) as never,
  isInitializeRequest,
  supportedProtocolVersions: SUPPORTED_PROTOCOL_VERSIONS,
};

/**
 * A Streamable HTTP handler (node:http, Express) whose MCP sessions live in the shared store:
 * any instance serves any session. At `initialize` it stores the session record (protocol
 * version, client info and capabilities, principal, creation time); an instance that gets a
 * request for a session it does not hold rebuilds the server and transport through public SDK
 * calls (a transport whose `sessionIdGenerator` returns the stored id, fed the stored
 * `initialize`), then serves the request. Unknown or deleted sessions get 404; DELETE ends the
 * session everywhere; every request slides the TTL; a session answers only its principal.
 * Throws `ERR_INVALID_ARGUMENT` for invalid options.
 *
 * @example
 * const services = await registerRedisBackedServices(null, { redisUrl: process.env.REDIS_URL });
 * const handler = createMcpHttpHandler({
 *   services,
 *   createServer: () => {
 *     const server = new McpServer({ name: "demo", version: "1.0.0" });
 *     server.registerTool("echo", { inputSchema: { text: z.string() } }, async ({ text }) => ({
 *       content: [{ type: "text", text }],
 *     }));
 *     return server;
 *   },
 * });
 * http.createServer((req, res) => void handler(req, res)).listen(3000);
 */
export function createMcpHttpHandler(options: McpHttpHandlerOptions): McpHttpHandler {
  return createSessionfulHandler(options, sdkV1);
}
