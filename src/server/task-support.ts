/**
 * Task support declared per tool (the tasks extension's `execution.taskSupport`), which SDK 2.4's
 * `registerTool` cannot express yet: the declaration is set on the registered tool, so that
 * `tools/list` shows it, and a `tools/call` of a `required` tool from a request that did not
 * declare the extension is answered -32021 (Missing Required Client Capability) before the tool
 * runs. A tool handler cannot answer it itself: `McpServer` turns what a tool throws into a tool
 * result with `isError`, and the extension asks for a JSON-RPC error.
 */
import {
  CLIENT_CAPABILITIES_META_KEY,
  type McpServer,
  MissingRequiredClientCapabilityError,
  type RegisteredTool,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { TASKS_EXTENSION } from "../mcp/v2/index.js";

/** Whether the request declared the tasks extension in its client capabilities. */
export function declaresTasks(ctx: ServerContext): boolean {
  const declared = (ctx.mcpReq.envelope as Record<string, unknown> | undefined)?.[
    CLIENT_CAPABILITIES_META_KEY
  ] as { extensions?: Record<string, unknown> } | undefined;
  return declared?.extensions?.[TASKS_EXTENSION] !== undefined;
}

type Handler = (request: unknown, ctx: ServerContext) => Promise<unknown>;

/** Declares `taskSupport` on `tools` and enforces `required` ones; call after registering them. */
export function declareTaskSupport(
  server: McpServer,
  tools: Record<string, { tool: RegisteredTool; taskSupport: "optional" | "required" }>,
): void {
  for (const { tool, taskSupport } of Object.values(tools)) {
    tool.execution = { ...tool.execution, taskSupport } as RegisteredTool["execution"];
  }
  // The check must run before the SDK's own tools/call wrapper (which verifies and consumes a
  // request state): wrapping through setRequestHandler would run that wrapper twice.
  const handlers = (server.server as unknown as { _requestHandlers: Map<string, Handler> })
    ._requestHandlers;
  const inner = handlers.get("tools/call");
  if (inner === undefined) throw new Error("declareTaskSupport: register the tools first");
  handlers.set("tools/call", async (request, ctx) => {
    const name = (request as { params?: { name?: unknown } }).params?.name;
    if (
      typeof name === "string" &&
      tools[name]?.taskSupport === "required" &&
      !declaresTasks(ctx)
    ) {
      throw new MissingRequiredClientCapabilityError({
        requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } },
      } as ConstructorParameters<typeof MissingRequiredClientCapabilityError>[0]);
    }
    return inner(request, ctx);
  });
}
