/**
 * The protocol 2026-07-28 side of the reference server, on SDK v2: `createMcpHandler` builds a
 * server per request, with the shared services of `mcp-session-store/mcp/v2` behind it: the
 * Redis event bus for `subscriptions/listen` on every instance, handles for cross-call state,
 * request states consumed at most once, and the tasks extension's store.
 * 2025-era requests never reach it (`legacy: "reject"`): the HTTP layer sends them to the
 * sessionful handler first.
 */
import {
  createMcpHandler,
  InMemoryServerEventBus,
  type McpHttpHandler,
  McpServer,
} from "@modelcontextprotocol/server";
import {
  type McpV2Services,
  registerTaskHandlers,
  requestStateCodec,
  TASKS_EXTENSION,
} from "../mcp/v2/index.js";
import type { Logger } from "../types.js";
import type { ServerConfig } from "./config.js";
import {
  CONFORMANCE_MODERN_CAPABILITIES,
  registerModernConformance,
} from "./conformance-modern.js";
import { FIXTURE_TASK_SUPPORT } from "./conformance-tasks.js";
import type { ModernHandler } from "./http.js";
import { refuseWithoutTasks } from "./task-support.js";
import {
  type ChargeState,
  DEMO_TASK_SUPPORT,
  principalOf,
  registerModernTools,
} from "./tools-modern.js";

/**
 * Builds the modern-era handler (`handler.fetch(request, { parsedBody })`), closed with
 * `handler.close()`.
 */
export function createModernHandler(options: {
  config: ServerConfig;
  services: McpV2Services;
  instance: string;
  logger: Logger;
}): ModernHandler & { close(): Promise<void> } {
  const { config, services, instance, logger } = options;
  const conformance = config.profile === "conformance";
  // One codec for every multi round-trip tool: states are bound to the caller and refused on
  // every instance once consumed.
  const codec = requestStateCodec<ChargeState>(services.requestStates, {
    bind: (ctx) => principalOf(ctx),
  });
  // A required-task tool called without the extension is refused before the SDK sees the call.
  const taskSupport = conformance
    ? { ...DEMO_TASK_SUPPORT, ...FIXTURE_TASK_SUPPORT }
    : DEMO_TASK_SUPPORT;
  const handler: McpHttpHandler = createMcpHandler(
    () => {
      const server = new McpServer(
        { name: "mcp-session-store-reference", version: "0.1.0" },
        {
          capabilities: {
            tools: { listChanged: true },
            // SDK 2.4 does not type extensions yet.
            extensions: { [TASKS_EXTENSION]: {} },
            ...(conformance ? CONFORMANCE_MODERN_CAPABILITIES : {}),
          } as never,
          requestState: { verify: codec.verify },
        },
      );
      registerModernTools(server, { services, codec, instance });
      registerTaskHandlers(server.server, services.tasks, { principal: principalOf });
      if (conformance) {
        registerModernConformance(server, {
          codec: codec as never,
          notify: () => handler.notify,
          tasks: services.tasks,
        });
      }
      return server;
    },
    {
      // On the memory store there is one process: the SDK's own in-memory bus is all it needs
      // (and the baseline the benchmark compares the Redis bus with).
      bus:
        services.sessionStore.backend === "memory"
          ? new InMemoryServerEventBus()
          : services.eventBus,
      legacy: "reject",
      maxRequestBodySize: config.maxBodyBytes,
      // Rejected requests land here too (a client's mistake, not ours): logged when VERBOSE.
      onerror: (error) => {
        if (config.verbose) logger.warn(`modern MCP request: ${error.message}`);
      },
    },
  );
  return {
    fetch: async (request, fetchOptions) =>
      refuseWithoutTasks(fetchOptions?.parsedBody, taskSupport) ??
      handler.fetch(request, fetchOptions),
    close: () => handler.close(),
  };
}
