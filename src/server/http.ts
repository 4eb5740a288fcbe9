/**
 * The HTTP side of the reference server: routes (`/mcp`, `/metrics`, `/healthz`, `/readyz`),
 * Host/Origin checks against DNS rebinding, CORS, timeouts, and graceful draining.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { isJsonContentType, isLegacyRequest } from "@modelcontextprotocol/server";
import { printable } from "../codec.js";
import type { McpLegacyHttpHandler } from "../mcp/v2/index.js";
import { metricsHandler } from "../telemetry/http.js";
import type { Logger, SessionStore } from "../types.js";
import type { ServerConfig } from "./config.js";
import { httpRequestCounter } from "./http-metrics.js";
import { RateLimiter } from "./rate-limit.js";
import { readBody, sendWebResponse, toWebRequest } from "./web.js";

/** The protocol 2026-07-28 side of `/mcp`: SDK v2's `createMcpHandler` (`legacy: "reject"`). */
export interface ModernHandler {
  fetch(request: Request, options?: { parsedBody?: unknown }): Promise<Response>;
}

/** The running HTTP server. */
export interface HttpApp {
  readonly server: http.Server;
  /** Stops accepting, ends SSE streams with a retry hint, waits for in-flight calls (bounded). */
  drain(timeoutMs: number): Promise<{ finished: boolean; interrupted: number }>;
  /** Whether `drain` has started. */
  readonly draining: boolean;
}

interface Active {
  res: ServerResponse;
  /** A 2025-era standalone GET stream or a subscriptions/listen stream: it never ends by itself. */
  stream: boolean;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** A JSON-RPC error body: what every refusal on /mcp looks like (never a stack trace). */
function rpcError(res: ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, { jsonrpc: "2.0", error: { code, message }, id: null });
}

/** `host[:port]` or `[v6]:port` → the host name alone, lower case. */
export function hostnameOf(hostHeader: string): string {
  const value = hostHeader.trim().toLowerCase();
  if (value.startsWith("[")) {
    const end = value.indexOf("]");
    return end === -1 ? value : value.slice(0, end + 1);
  }
  const colon = value.indexOf(":");
  return colon === -1 ? value : value.slice(0, colon);
}

function isLocalOrigin(origin: string): boolean {
  try {
    const { hostname, protocol } = new URL(origin);
    return (
      (protocol === "http:" || protocol === "https:") &&
      ["localhost", "127.0.0.1", "[::1]"].includes(hostname.toLowerCase())
    );
  } catch {
    return false;
  }
}

/** Why a request must be refused (DNS rebinding, foreign origin), or null. */
export function checkHostAndOrigin(
  config: Pick<ServerConfig, "allowedHosts" | "allowedOrigins" | "allowLocalOrigins">,
  headers: IncomingMessage["headers"],
): string | null {
  if (config.allowedHosts !== null) {
    const host = headers.host;
    if (host === undefined || !config.allowedHosts.includes(hostnameOf(host))) {
      return "Invalid Host header";
    }
  }
  const origin = headers.origin;
  if (origin !== undefined && config.allowedOrigins !== null) {
    const normalized = origin.toLowerCase().replace(/\/$/, "");
    const allowed =
      config.allowedOrigins.includes(normalized) ||
      (config.allowLocalOrigins && isLocalOrigin(normalized));
    if (!allowed) return "Invalid Origin header";
  }
  return null;
}

/** The address a client connects from; behind a trusted proxy, the one the proxy saw. */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = req.headers["x-forwarded-for"];
    const list = (Array.isArray(forwarded) ? forwarded.join(",") : (forwarded ?? "")).split(",");
    // The last entry is the one our proxy appended; earlier ones are the client's word.
    const last = list[list.length - 1]?.trim();
    if (last) return last;
  }
  return req.socket.remoteAddress ?? "unknown";
}

/** Builds the HTTP server (not listening yet). */
export function createHttpApp(options: {
  config: ServerConfig;
  /** Protocol 2025-11-25 and older: shared sessions. */
  handler: McpLegacyHttpHandler;
  /** Protocol 2026-07-28: requests that `isLegacyRequest` does not claim for the sessions. */
  modern?: ModernHandler;
  store: SessionStore;
  registry: Parameters<typeof metricsHandler>[0];
  logger: Logger;
  /** Turns a failed health check's detail into one line naming the cause and what to do. */
  explainUnready?: (detail: string | undefined) => string;
}): HttpApp {
  const { config, handler, store, logger } = options;
  const metrics = metricsHandler(options.registry);
  const count = httpRequestCounter(options.registry);
  const initLimit = new RateLimiter(config.initRateLimit, config.initRateWindowMs);
  const active = new Set<Active>();
  let draining = false;
  let idle: (() => void) | undefined;

  async function readiness(res: ServerResponse): Promise<void> {
    if (draining) {
      sendJson(res, 503, { status: "draining", backend: store.backend });
      return;
    }
    try {
      const health = await store.health();
      const detail = health.ok ? undefined : explain(health.detail);
      sendJson(res, health.ok ? 200 : 503, {
        status: health.ok ? "ready" : "unavailable",
        backend: health.backend,
        ...(health.latencyMs === undefined ? {} : { latencyMs: health.latencyMs }),
        ...(detail === undefined ? {} : { detail }),
      });
    } catch (err) {
      sendJson(res, 503, {
        status: "unavailable",
        backend: store.backend,
        detail: explain(err instanceof Error ? err.message : String(err)),
      });
    }
  }

  function explain(detail: string | undefined): string | undefined {
    if (options.explainUnready !== undefined) return options.explainUnready(detail);
    return detail === undefined ? undefined : printable(detail, 300);
  }

  function cors(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin;
    if (origin === undefined) return;
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("access-control-expose-headers", "mcp-session-id");
    res.setHeader("vary", "origin");
  }

  async function serveMcp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const refused = checkHostAndOrigin(config, req.headers);
    if (refused !== null) {
      rpcError(res, 403, -32000, `Forbidden: ${refused}`);
      return;
    }
    cors(req, res);
    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
        "access-control-allow-headers":
          "content-type, accept, authorization, mcp-session-id, mcp-protocol-version, mcp-method, mcp-name, last-event-id",
        "access-control-max-age": "600",
      });
      res.end();
      return;
    }
    if (req.method === "POST" && isJsonContentType(req.headers["content-type"])) {
      // Tracked from the first byte: drain() waits for a body still arriving too.
      await track(res, false, (entry) => servePost(req, res, entry));
      return;
    }
    // GET and DELETE are 2025-era session operations; a POST that is not JSON gets its 415 there.
    await track(res, req.method === "GET", () => legacy(req, res, undefined));
  }

  /** A POST: read once, classified by the SDK's own rule, served by the era it belongs to. */
  async function servePost(
    req: IncomingMessage,
    res: ServerResponse,
    entry: Active,
  ): Promise<void> {
    const body = await readBody(req, config.maxBodyBytes);
    if (body === null) {
      res.setHeader("connection", "close");
      rpcError(
        res,
        413,
        -32000,
        `Payload Too Large: Request body must not exceed ${config.maxBodyBytes} bytes`,
      );
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      rpcError(res, 400, -32700, "Parse error: Invalid JSON");
      return;
    }
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    const request = toWebRequest(req, body, abort.signal);
    const modern =
      options.modern !== undefined &&
      !(await isLegacyRequest(request, parsed, { maxRequestBodySize: config.maxBodyBytes }));
    if (!modern) {
      await legacy(req, res, parsed);
      return;
    }
    // A subscriptions/listen stream never ends by itself, like a 2025-era GET stream.
    if ((parsed as { method?: unknown } | null)?.method === "subscriptions/listen") {
      if (draining) {
        refuseStream(res);
        return;
      }
      entry.stream = true;
    }
    const response = await (options.modern as ModernHandler).fetch(request, {
      parsedBody: parsed,
    });
    await sendWebResponse(response, res);
  }

  /** A new stream while draining would be cut at once: send the client elsewhere. */
  function refuseStream(res: ServerResponse): void {
    res.setHeader("retry-after", "1");
    rpcError(res, 503, -32000, "Service Unavailable: shutting down");
  }

  /** The 2025-era side: a POST without a session id is an initialize, which opens a session. */
  async function legacy(req: IncomingMessage, res: ServerResponse, parsed: unknown) {
    if (req.method === "POST" && req.headers["mcp-session-id"] === undefined) {
      const wait = initLimit.take(clientAddress(req, config.trustProxy));
      if (wait > 0) {
        res.setHeader("retry-after", String(wait));
        rpcError(res, 429, -32000, "Too Many Requests: too many new sessions from this client");
        return;
      }
    }
    await handler(req, res, parsed);
  }

  /** Runs one exchange as an active request, so that drain() can wait for it or end its stream. */
  async function track(
    res: ServerResponse,
    stream: boolean,
    serve: (entry: Active) => Promise<void>,
  ): Promise<void> {
    if (draining && stream) {
      refuseStream(res);
      return;
    }
    const entry: Active = { res, stream };
    active.add(entry);
    try {
      await serve(entry);
    } finally {
      active.delete(entry);
      if (draining && [...active].every((a) => a.stream)) idle?.();
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A response ended by drain() may still be written to by the transport: never crash on it.
    res.on("error", () => {});
    if (draining) res.setHeader("connection", "close");
    const path = (req.url ?? "/").split("?")[0];
    const method = req.method ?? "GET";
    count(req, res, path ?? "/");
    if (path === "/mcp") {
      await serveMcp(req, res);
      return;
    }
    if (method !== "GET" && method !== "HEAD") {
      sendJson(res, 405, { error: "Method Not Allowed" }, { allow: "GET, HEAD" });
      return;
    }
    if (path === "/healthz") sendJson(res, 200, { status: "ok" });
    else if (path === "/readyz") await readiness(res);
    else if (path === "/metrics") {
      // Same DNS-rebinding rule as /mcp: a page must not read the metrics through a local browser.
      const refused = checkHostAndOrigin(config, req.headers);
      if (refused !== null) sendJson(res, 403, { error: `Forbidden: ${refused}` });
      else metrics(req, res);
    } else sendJson(res, 404, { error: "Not Found" });
  }

  const server = http.createServer(
    // How often Node looks for requests past requestTimeout (its default, 30 s, would let a
    // short REQUEST_TIMEOUT_MS run up to 30 s late).
    { connectionsCheckingInterval: Math.min(30_000, Math.max(100, config.requestTimeoutMs / 4)) },
    (req, res) => {
      route(req, res).catch((err: unknown) => {
        logger.error(
          `request failed: ${printable(err instanceof Error ? err.message : String(err))}`,
        );
        if (!res.headersSent) rpcError(res, 500, -32603, "Internal error");
        else res.destroy();
      });
    },
  );
  // Slow clients: the whole request (headers and body) must arrive within REQUEST_TIMEOUT_MS.
  // Responses (SSE streams, long tool calls) are not limited by it.
  server.requestTimeout = config.requestTimeoutMs;
  server.headersTimeout = Math.min(config.requestTimeoutMs, 60_000);
  server.keepAliveTimeout = 5_000;

  /** Ends an SSE stream with a `retry` hint: the client reconnects (elsewhere) and resumes. */
  function endStream(res: ServerResponse): void {
    if (res.writableEnded || res.destroyed) return;
    if (res.headersSent && String(res.getHeader("content-type")).includes("text/event-stream")) {
      res.write(`retry: ${config.sseRetryMs}\n\n`);
      res.end();
    } else {
      res.destroy();
    }
  }

  async function drain(timeoutMs: number) {
    draining = true;
    server.close();
    server.closeIdleConnections();
    for (const entry of active) if (entry.stream) endStream(entry.res);
    const calls = () => [...active].filter((a) => !a.stream);
    let timer: NodeJS.Timeout | undefined;
    if (calls().length > 0) {
      await new Promise<void>((resolve) => {
        idle = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
    }
    clearTimeout(timer);
    idle = undefined;
    const left = [...active];
    for (const entry of left) endStream(entry.res);
    const interrupted = left.filter((a) => !a.stream).length;
    return { finished: interrupted === 0, interrupted };
  }

  return {
    server,
    drain,
    get draining() {
      return draining;
    },
  };
}
