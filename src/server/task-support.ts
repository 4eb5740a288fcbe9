/**
 * Task support declared per tool (the tasks extension's `execution.taskSupport`), which SDK 2.4's
 * `registerTool` cannot express yet: the declaration is set on the registered tool, so that
 * `tools/list` shows it, and a `tools/call` of a `required` tool from a request that did not
 * declare the extension is answered -32021 (Missing Required Client Capability) before the
 * request reaches the SDK. Not inside the tool: `McpServer` turns what a tool throws into a tool
 * result with `isError`, and the extension asks for a JSON-RPC error. Not around the SDK's
 * `tools/call` handler either: that handler is reachable through private fields only, and
 * wrapping it through `setRequestHandler` would verify (and consume) a request state twice.
 */
import {
  CLIENT_CAPABILITIES_META_KEY,
  MissingRequiredClientCapabilityError,
  type RegisteredTool,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { TASKS_EXTENSION } from "../mcp/v2/index.js";

export type TaskSupport = "optional" | "required";

function declaresTasksIn(capabilities: unknown): boolean {
  const extensions = (capabilities as { extensions?: unknown } | undefined)?.extensions;
  return (
    typeof extensions === "object" &&
    extensions !== null &&
    (extensions as Record<string, unknown>)[TASKS_EXTENSION] !== undefined
  );
}

/** Whether the request declared the tasks extension in its client capabilities. */
export function declaresTasks(ctx: ServerContext): boolean {
  const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
  return declaresTasksIn(envelope?.[CLIENT_CAPABILITIES_META_KEY]);
}

/** Declares `taskSupport` on registered tools (`support` maps each name to its level). */
export function declareTaskSupport(
  tools: Record<string, RegisteredTool>,
  support: Readonly<Record<string, TaskSupport>>,
): void {
  for (const [name, tool] of Object.entries(tools)) {
    const taskSupport = support[name];
    if (taskSupport === undefined) throw new Error(`declareTaskSupport: no level for ${name}`);
    tool.execution = { ...tool.execution, taskSupport } as RegisteredTool["execution"];
  }
}

/**
 * The answer to a 2026-07-28 `tools/call` (its parsed body) of a tool whose task support is
 * `required`, from a request that did not declare the tasks extension; `undefined` for every
 * other request.
 */
export function refuseWithoutTasks(
  body: unknown,
  support: Readonly<Record<string, TaskSupport>>,
): Response | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  const { id, method, params } = body as { id?: unknown; method?: unknown; params?: unknown };
  if (method !== "tools/call" || typeof params !== "object" || params === null) return undefined;
  const { name, _meta } = params as { name?: unknown; _meta?: Record<string, unknown> };
  if (typeof name !== "string" || !Object.hasOwn(support, name)) return undefined;
  if (support[name] !== "required") return undefined;
  if (declaresTasksIn(_meta?.[CLIENT_CAPABILITIES_META_KEY])) return undefined;
  const error = new MissingRequiredClientCapabilityError({
    requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } },
  } as ConstructorParameters<typeof MissingRequiredClientCapabilityError>[0]);
  return Response.json(
    {
      jsonrpc: "2.0",
      id: typeof id === "string" || typeof id === "number" ? id : null,
      error: { code: error.code, message: error.message, data: error.data },
    },
    { status: 400 },
  );
}
