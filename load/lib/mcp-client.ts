/**
 * A minimal MCP Streamable HTTP client on k6/http, for the load scripts. The protocol itself
 * (bodies, headers, SSE parsing) lives in ./mcp-protocol.ts, which the Node tests check against a
 * real MCP server.
 */
import { check } from "k6";
import http, { type RefinedResponse } from "k6/http";
import {
  findResponse,
  initializedNotification,
  initializeRequest,
  isToolSuccess,
  type JsonRpcMessage,
  mcpHeaders,
  modernHeaders,
  modernToolCallRequest,
  parseMcpResponse,
  sessionIdFrom,
  structuredString,
  toolCallRequest,
  toolResultText,
} from "./mcp-protocol.ts";

export interface McpSession {
  readonly url: string;
  readonly sessionId: string;
  readonly protocolVersion: string;
  nextId: number;
}

type TextResponse = RefinedResponse<"text">;

function contentType(res: TextResponse): string | undefined {
  return res.headers["Content-Type"] ?? res.headers["content-type"];
}

function messagesOf(res: TextResponse): JsonRpcMessage[] {
  try {
    return parseMcpResponse(contentType(res), typeof res.body === "string" ? res.body : "");
  } catch {
    return [];
  }
}

/**
 * initialize + notifications/initialized. Returns null (and fails a check) when the server does
 * not open a session.
 */
export function openSession(url: string, tags: Record<string, string> = {}): McpSession | null {
  const res = http.post(url, JSON.stringify(initializeRequest(1)), {
    headers: mcpHeaders(),
    tags: { ...tags, mcp_method: "initialize" },
    responseType: "text",
  });
  const sessionId = sessionIdFrom(res.headers);
  const response = findResponse(messagesOf(res), 1);
  const protocolVersion = response?.result?.protocolVersion;
  const ok = check(res, {
    "initialize: 200": (r) => r.status === 200,
    "initialize: session id": () => typeof sessionId === "string" && sessionId.length > 0,
    "initialize: protocol version": () => typeof protocolVersion === "string",
  });
  if (!ok || !sessionId || typeof protocolVersion !== "string") return null;
  const session: McpSession = { url, sessionId, protocolVersion, nextId: 2 };
  const ack = http.post(url, JSON.stringify(initializedNotification()), {
    headers: mcpHeaders(session),
    tags: { ...tags, mcp_method: "notifications/initialized" },
    responseType: "text",
  });
  check(ack, { "initialized: 202": (r) => r.status === 202 });
  return session;
}

/** tools/call; returns the text of the result, or undefined (and fails a check) on error. */
export function callTool(
  session: McpSession,
  name: string,
  args: Record<string, unknown> = {},
  tags: Record<string, string> = {},
): string | undefined {
  const id = session.nextId++;
  const res = http.post(session.url, JSON.stringify(toolCallRequest(id, name, args)), {
    headers: mcpHeaders(session),
    tags: { ...tags, mcp_method: "tools/call", mcp_tool: name },
    responseType: "text",
  });
  const response = findResponse(messagesOf(res), id);
  const ok = check(res, {
    [`${name}: 200`]: (r) => r.status === 200,
    [`${name}: success`]: () => isToolSuccess(response),
  });
  return ok ? toolResultText(response) : undefined;
}

/** DELETE ends the session on every instance. */
export function closeSession(session: McpSession, tags: Record<string, string> = {}): void {
  const res = http.del(session.url, null, {
    headers: mcpHeaders(session),
    tags: { ...tags, mcp_method: "DELETE" },
    responseType: "text",
  });
  check(res, { "DELETE: 200": (r) => r.status === 200 });
}

let modernId = 1;

/**
 * A protocol 2026-07-28 `tools/call` (no session, per-request `_meta`); returns the result's
 * JSON-RPC message, or undefined (and fails a check) on error.
 */
export function callModernTool(
  url: string,
  name: string,
  args: Record<string, unknown> = {},
  tags: Record<string, string> = {},
): { text: string | undefined; handle: (field: string) => string | undefined } | undefined {
  const id = modernId++;
  const res = http.post(url, JSON.stringify(modernToolCallRequest(id, name, args)), {
    headers: modernHeaders("tools/call", name),
    tags: { ...tags, mcp_method: "tools/call", mcp_tool: name, mcp_era: "2026-07-28" },
    responseType: "text",
  });
  const response = findResponse(messagesOf(res), id);
  const ok = check(res, {
    [`${name} (2026-07-28): 200`]: (r) => r.status === 200,
    [`${name} (2026-07-28): success`]: () => isToolSuccess(response),
  });
  if (!ok) return undefined;
  return {
    text: toolResultText(response),
    handle: (field) => structuredString(response, field),
  };
}
