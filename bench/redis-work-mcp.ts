/** Raw HTTP MCP requests of both eras for bench/mcp-redis-work.ts (no SDK client in the way). */
import type autocannon from "autocannon";
import { createParser } from "eventsource-parser";

const ACCEPT = "application/json, text/event-stream";
export const LEGACY_VERSION = "2025-11-25";
export const MODERN_VERSION = "2026-07-28";

export const MODERN_META = {
  "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
  "io.modelcontextprotocol/clientInfo": { name: "redis-work", version: "1.0.0" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

let nextId = 1;

function rpc(method: string, params: unknown): string {
  return JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params });
}

async function post(
  url: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: ACCEPT, ...headers },
    body,
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`POST ${url}: ${response.status} ${text}`);
  return { status: response.status, text, headers: response.headers };
}

/** The JSON-RPC result in a JSON or SSE body (the last message that carries one). */
export function resultOf(text: string): Record<string, unknown> {
  const messages: string[] = [];
  if (text.trimStart().startsWith("{")) messages.push(text);
  else {
    const parser = createParser({ onEvent: (event) => messages.push(event.data) });
    parser.feed(text);
    parser.reset({ consume: true });
  }
  for (const raw of messages.reverse()) {
    if (raw.trim() === "") continue;
    const message = JSON.parse(raw) as { result?: Record<string, unknown>; error?: unknown };
    if (message.error !== undefined) throw new Error(`JSON-RPC error: ${raw}`);
    if (message.result !== undefined) return message.result;
  }
  throw new Error(`no JSON-RPC result in: ${text.slice(0, 300)}`);
}

/** `initialize` of a 2025-era session; returns the session id. */
export async function initialize(url: string): Promise<string> {
  const response = await post(
    url,
    rpc("initialize", {
      protocolVersion: LEGACY_VERSION,
      capabilities: {},
      clientInfo: { name: "redis-work", version: "1.0.0" },
    }),
    {},
  );
  const id = response.headers.get("mcp-session-id");
  if (id === null) throw new Error("initialize: no mcp-session-id");
  return id;
}

function sessionHeaders(sessionId: string): Record<string, string> {
  return { "mcp-session-id": sessionId, "mcp-protocol-version": LEGACY_VERSION };
}

export async function initialized(url: string, sessionId: string): Promise<void> {
  await post(
    url,
    JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
    sessionHeaders(sessionId),
  );
}

/** A 2025-era `tools/call` on a session; returns the result. */
export async function legacyCall(
  url: string,
  sessionId: string,
  name: string,
  args: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const response = await post(
    url,
    rpc("tools/call", { name, arguments: args }),
    sessionHeaders(sessionId),
  );
  const result = resultOf(response.text);
  if (result.isError === true) throw new Error(`${name} failed: ${response.text}`);
  return result;
}

export async function deleteSession(url: string, sessionId: string): Promise<void> {
  const response = await fetch(url, { method: "DELETE", headers: sessionHeaders(sessionId) });
  await response.body?.cancel();
  if (response.status >= 300) throw new Error(`DELETE: ${response.status}`);
}

/** A 2026-07-28 `tools/call` (no session, the envelope in `_meta`); returns the result. */
export async function modernCall(
  url: string,
  name: string,
  args: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const response = await post(
    url,
    rpc("tools/call", { name, arguments: args, _meta: MODERN_META }),
    { "mcp-protocol-version": MODERN_VERSION, "mcp-method": "tools/call", "mcp-name": name },
  );
  const result = resultOf(response.text);
  if (result.isError === true) throw new Error(`${name} failed: ${response.text}`);
  return result;
}

const LOAD_HEADERS = {
  "content-type": "application/json",
  accept: ACCEPT,
};

/** autocannon: 2025-era `notes_get` calls, each connection on one session of `pool`. */
export function legacyLoadRequests(pool: string[]): autocannon.Request[] {
  let nextSession = 0;
  return [
    {
      method: "POST",
      path: "/mcp",
      headers: LOAD_HEADERS,
      setupRequest: (request: autocannon.Request, context: object) => {
        const ctx = context as { sessionId?: string };
        ctx.sessionId ??= pool[nextSession++ % pool.length];
        return {
          ...request,
          headers: {
            ...request.headers,
            "mcp-session-id": ctx.sessionId as string,
            "mcp-protocol-version": LEGACY_VERSION,
          },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 1,
            method: "tools/call",
            params: { name: "notes_get", arguments: { key: "k" } },
          }),
        };
      },
    },
  ];
}

/** autocannon: 2026-07-28 `notes_get` calls on one notebook handle. */
export function modernLoadRequests(notebook: string): autocannon.Request[] {
  return [
    {
      method: "POST",
      path: "/mcp",
      headers: {
        ...LOAD_HEADERS,
        "mcp-protocol-version": MODERN_VERSION,
        "mcp-method": "tools/call",
        "mcp-name": "notes_get",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: {
          name: "notes_get",
          arguments: { notebook, key: "k" },
          _meta: MODERN_META,
        },
      }),
    },
  ];
}
