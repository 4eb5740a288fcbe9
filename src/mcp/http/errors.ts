import type { ServerResponse } from "node:http";
import { printable } from "../../codec.js";
import { ErrorCode, isSessionStoreError } from "../../errors.js";
import type { Logger } from "../../types.js";

/** A JSON-RPC request id, or null. */
export type RpcId = string | number | null;

/** An HTTP answer with a JSON-RPC error body: what the handler throws to refuse a request. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly rpcCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const notFound = () => new HttpError(404, -32001, "Session not found");

/**
 * Connection-level headers are the node server's business (it honours the client's
 * `Connection: close` and the application's own, e.g. while draining): never copied from the SDK.
 */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade"]);

/** Sets `headers` with setHeader, so the application (and a drain) can read them back. */
export function writeHead(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
): void {
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name.toLowerCase())) res.setHeader(name, value);
  }
  res.writeHead(status);
}

export function sendError(res: ServerResponse, err: HttpError, id: RpcId): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({
    jsonrpc: "2.0",
    error: { code: err.rpcCode, message: err.message },
    id,
  });
  // Our own `connection: close` (a body left unread) is no hop-by-hop copy: it must go out.
  if (err.headers.connection === "close") res.setHeader("connection", "close");
  writeHead(res, err.status, { "content-type": "application/json", ...err.headers });
  res.end(body);
}

/**
 * The 4xx answer for a store error caused by what the client sent (data that is not storable
 * JSON, a record over the store's limit), or undefined for any other error.
 */
export function clientFault(err: unknown): HttpError | undefined {
  if (!isSessionStoreError(err)) return undefined;
  if (err.code === ErrorCode.PAYLOAD_TOO_LARGE) {
    return new HttpError(413, -32602, `Payload Too Large: ${printable(err.message)}`);
  }
  if (err.code === ErrorCode.SERIALIZATION || err.code === ErrorCode.INVALID_ARGUMENT) {
    return new HttpError(400, -32602, `Invalid params: ${printable(err.message)}`);
  }
  return undefined;
}

/** How often, at most, a store outage is logged while requests keep failing with 503. */
const OUTAGE_LOG_EVERY_MS = 10_000;

/**
 * One warning per `OUTAGE_LOG_EVERY_MS` while the store is down, with the number of 503s since
 * the last one: an outage under load must not write a line per request.
 */
export class OutageLog {
  private last = 0;
  private suppressed = 0;

  constructor(private readonly logger: Logger) {}

  report(message: string): void {
    const now = Date.now();
    if (now - this.last < OUTAGE_LOG_EVERY_MS) {
      this.suppressed++;
      return;
    }
    const more = this.suppressed > 0 ? ` (${this.suppressed} more 503s since the last line)` : "";
    this.last = now;
    this.suppressed = 0;
    this.logger.warn(`Session store unavailable, answering 503: ${message}${more}`);
  }
}

/** The answer to an error no branch refused on purpose: 503 for a store outage, else 500. */
export function unexpected(err: unknown, logger: Logger, outage: OutageLog): HttpError {
  const unavailable = isSessionStoreError(err) && err.code === ErrorCode.BACKEND_UNAVAILABLE;
  const text = printable(err instanceof Error ? err.message : String(err));
  if (unavailable) {
    outage.report(text);
    return new HttpError(503, -32000, "Service Unavailable: session store unavailable");
  }
  logger.error(`MCP request failed: ${text}`);
  return new HttpError(500, -32603, "Internal error");
}
