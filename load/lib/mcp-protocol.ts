/**
 * MCP Streamable HTTP, the client side, as plain data: request bodies, headers and response
 * parsing. No k6 and no Node imports, so the k6 scripts and the Node tests share it.
 */

/** The protocol revision the load scripts speak (the server may answer with an older one). */
export const LATEST_PROTOCOL_VERSION = "2025-11-25";

/** What a Streamable HTTP client must accept: a JSON body or an SSE stream. */
export const ACCEPT = "application/json, text/event-stream";

export type JsonRpcId = string | number;

export interface JsonRpcRequest {
  jsonrpc: "2.0";
  id: JsonRpcId;
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcNotification {
  jsonrpc: "2.0";
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcError {
  code: number;
  message: string;
  data?: unknown;
}

/** A response, request or notification as received (only what the scripts look at is typed). */
export interface JsonRpcMessage {
  jsonrpc: "2.0";
  id?: JsonRpcId | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: JsonRpcError;
}

/** One Server-Sent Event. */
export interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

/** Result of `tools/call`. */
export interface ToolResult {
  content?: Array<{ type: string; text?: string }>;
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

/** The `initialize` request that opens a session. */
export function initializeRequest(
  id: JsonRpcId,
  clientInfo: { name: string; version: string } = { name: "k6-load", version: "1.0.0" },
  protocolVersion: string = LATEST_PROTOCOL_VERSION,
): JsonRpcRequest {
  return {
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: { protocolVersion, capabilities: {}, clientInfo },
  };
}

/** The notification a client sends once it has read the initialize result. */
export function initializedNotification(): JsonRpcNotification {
  return { jsonrpc: "2.0", method: "notifications/initialized" };
}

/** `tools/call` of `name` with `args`. */
export function toolCallRequest(
  id: JsonRpcId,
  name: string,
  args: Record<string, unknown> = {},
): JsonRpcRequest {
  return { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } };
}

/** The protocol revision without sessions: every request carries its own `_meta` envelope. */
export const MODERN_PROTOCOL_VERSION = "2026-07-28";

/**
 * `tools/call` of protocol 2026-07-28: no session, no initialize; the envelope (`_meta` with the
 * protocol version, client info and capabilities) rides on every request.
 */
export function modernToolCallRequest(
  id: JsonRpcId,
  name: string,
  args: Record<string, unknown> = {},
  clientInfo: { name: string; version: string } = { name: "k6-load", version: "1.0.0" },
): JsonRpcRequest {
  return {
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: {
      name,
      arguments: args,
      _meta: {
        "io.modelcontextprotocol/protocolVersion": MODERN_PROTOCOL_VERSION,
        "io.modelcontextprotocol/clientInfo": clientInfo,
        "io.modelcontextprotocol/clientCapabilities": {},
      },
    },
  };
}

/** Headers of a 2026-07-28 request: the version, and the method and name mirrored from the body. */
export function modernHeaders(method: string, name?: string): Record<string, string> {
  return {
    ...mcpHeaders({ protocolVersion: MODERN_PROTOCOL_VERSION }),
    "Mcp-Method": method,
    ...(name === undefined ? {} : { "Mcp-Name": name }),
  };
}

/** `structuredContent[field]` of a tool result when it is a string (a handle), else undefined. */
export function structuredString(
  message: JsonRpcMessage | undefined,
  field: string,
): string | undefined {
  const value = (message?.result as ToolResult | undefined)?.structuredContent?.[field];
  return typeof value === "string" ? value : undefined;
}

/** `tools/list`. */
export function listToolsRequest(id: JsonRpcId): JsonRpcRequest {
  return { jsonrpc: "2.0", id, method: "tools/list", params: {} };
}

/**
 * Headers of a POST (and of the DELETE that ends a session). `sessionId` and `protocolVersion`
 * are sent once initialize has answered: the server rejects requests without them afterwards.
 */
export function mcpHeaders(
  options: { sessionId?: string | null; protocolVersion?: string | null } = {},
): Record<string, string> {
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    Accept: ACCEPT,
  };
  if (options.protocolVersion) headers["MCP-Protocol-Version"] = options.protocolVersion;
  if (options.sessionId) headers["Mcp-Session-Id"] = options.sessionId;
  return headers;
}

/**
 * A header value whatever the case of its name (k6 canonicalizes names to `Mcp-Session-Id`,
 * fetch lowercases them). Multi-valued headers give their first value.
 */
export function headerValue(
  headers: Record<string, string | string[] | undefined> | undefined,
  name: string,
): string | undefined {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() !== wanted) continue;
    const value = headers[key];
    return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}

/** The session id the server assigned in its initialize response. */
export function sessionIdFrom(
  headers: Record<string, string | string[] | undefined> | undefined,
): string | undefined {
  return headerValue(headers, "Mcp-Session-Id");
}

/**
 * Parses a `text/event-stream` body (the whole stream, as a string) into events, following the
 * WHATWG rules: lines end with CRLF, LF or CR; `data` lines join with "\n"; comments (`:`) and
 * events without data are dropped; one space after the colon is removed.
 */
export function parseSseEvents(body: string): SseEvent[] {
  const events: SseEvent[] = [];
  let data: string[] = [];
  let event = "";
  let id: string | undefined;
  const dispatch = (): void => {
    if (data.length > 0) {
      const sse: SseEvent = { event: event || "message", data: data.join("\n") };
      if (id !== undefined) sse.id = id;
      events.push(sse);
    }
    data = [];
    event = "";
  };
  for (const line of body.split(/\r\n|\r|\n/)) {
    if (line === "") {
      dispatch();
      continue;
    }
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id" && !value.includes("\0")) id = value;
  }
  // A stream cut without a trailing blank line still carries its last event.
  dispatch();
  return events;
}

/**
 * The JSON-RPC messages of a response body: a JSON object or batch (`application/json`), or the
 * `message` events of an SSE stream (`text/event-stream`). Throws on anything else.
 */
export function parseMcpResponse(
  contentType: string | undefined,
  body: string | null | undefined,
): JsonRpcMessage[] {
  const text = body ?? "";
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type === "text/event-stream") {
    // A resumable stream opens with a priming event: an id and empty data, no message.
    return parseSseEvents(text)
      .filter((e) => e.event === "message" && e.data.trim() !== "")
      .map((e) => JSON.parse(e.data) as JsonRpcMessage);
  }
  if (type === "application/json") {
    if (text.trim() === "") return [];
    const parsed = JSON.parse(text) as JsonRpcMessage | JsonRpcMessage[];
    return Array.isArray(parsed) ? parsed : [parsed];
  }
  throw new Error(`unexpected MCP response content type: ${contentType ?? "(none)"}`);
}

/** The response to request `id` among `messages` (notifications and progress are skipped). */
export function findResponse(
  messages: JsonRpcMessage[],
  id: JsonRpcId,
): JsonRpcMessage | undefined {
  return messages.find(
    (m) =>
      m.id === id && m.method === undefined && (m.result !== undefined || m.error !== undefined),
  );
}

/** The text of the first text content of a tool result, or undefined. */
export function toolResultText(message: JsonRpcMessage | undefined): string | undefined {
  const result = message?.result as ToolResult | undefined;
  return result?.content?.find((c) => c.type === "text")?.text;
}

/** True when `message` is a successful tool result (no JSON-RPC error, no `isError`). */
export function isToolSuccess(message: JsonRpcMessage | undefined): boolean {
  if (!message || message.error !== undefined || message.result === undefined) return false;
  return (message.result as ToolResult).isError !== true;
}
