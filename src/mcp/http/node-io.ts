import type { IncomingMessage, ServerResponse } from "node:http";
import contentType from "content-type";
import Negotiator from "negotiator";
import getRawBody from "raw-body";
import { HttpError, type RpcId, writeHead } from "./errors.js";

/** Whether a `Content-Type` header names JSON (`application/json` or `application/*+json`). */
export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  let type: string;
  try {
    type = contentType.parse(value).type;
  } catch {
    return false;
  }
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/**
 * Whether an `Accept` header accepts every one of `types` (negotiated by `negotiator`: wildcard
 * ranges count, a `q=0` refuses). The SDK checks the same with substring matches; for the
 * headers clients send (`application/json, text/event-stream`) both agree.
 */
export function acceptsAll(
  accept: string | string[] | undefined,
  types: readonly string[],
): boolean {
  if (accept === undefined) return false;
  return new Negotiator({ headers: { accept } }).mediaTypes(types).length === types.length;
}

/** Reads and parses a JSON body, refusing more than `max` bytes (413, connection closed). */
export async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  let raw: Buffer;
  try {
    raw = await getRawBody(req, { limit: max, length: req.headers["content-length"] });
  } catch (err) {
    const type = (err as { type?: unknown } | null)?.type;
    if (type === "entity.too.large") {
      throw new HttpError(
        413,
        -32000,
        `Payload Too Large: Request body must not exceed ${max} bytes`,
        {
          connection: "close",
        },
      );
    }
    if (type === "request.size.invalid") {
      throw new HttpError(400, -32700, "Parse error: body length does not match Content-Length", {
        connection: "close",
      });
    }
    throw err;
  }
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch {
    throw new HttpError(400, -32700, "Parse error: Invalid JSON");
  }
}

/** The id of a single JSON-RPC request (what its error answer must carry), else null. */
export function requestIdOf(body: unknown): RpcId {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return null;
  const id = (body as { id?: unknown }).id;
  return typeof id === "string" || typeof id === "number" ? id : null;
}

/**
 * The node request's headers as web `Headers`, without the framing of a body already read.
 *
 * Not `@hono/node-server`'s `getRequestListener` (what SDK v1's Node transport uses): its
 * response side writes the SDK's headers with `writeHead`, hop-by-hop ones included, so an
 * SDK `Connection: keep-alive` would override the server's `Connection: close` while it drains,
 * and the application could not read the headers back; the request side would wrap a body this
 * handler has already read and parsed. Bridging is these three functions instead.
 */
export function webHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    // The body is handed over parsed: the framing headers describe nothing any more.
    if (
      value === undefined ||
      name === "content-length" ||
      name === "transfer-encoding" ||
      name === "connection"
    ) {
      continue;
    }
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  return headers;
}

export function requestUrl(req: IncomingMessage): string {
  try {
    return new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`).toString();
  } catch {
    return "http://localhost/";
  }
}

/** Writes a web `Response` to a node response; resolves when it ends or the client leaves. */
export async function pipeResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  writeHead(res, response.status, headers);
  if (response.body === null) {
    res.end();
    return;
  }
  res.flushHeaders();
  const reader = response.body.getReader();
  const cancel = () => {
    reader.cancel().catch(() => {});
  };
  res.once("close", cancel);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off("drain", go);
            res.off("close", go);
            resolve();
          };
          res.once("drain", go);
          res.once("close", go);
        });
        if (res.destroyed) break;
      }
    }
  } catch {
    // The client went away (the reader was cancelled): nothing left to write.
  } finally {
    res.off("close", cancel);
    if (!res.writableEnded) res.end();
  }
}

/** Messages of a transport response body: SSE `data:` lines or a JSON document. */
export function messagesOf(text: string, type: string | null): unknown[] {
  if (type?.includes("application/json")) {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed : [parsed];
  }
  const out: unknown[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("data:")) continue;
    const data = line.slice(5).trim();
    if (data !== "") out.push(JSON.parse(data));
  }
  return out;
}

export function isResponseMessage(message: unknown): boolean {
  return (
    typeof message === "object" &&
    message !== null &&
    "id" in message &&
    ("result" in message || "error" in message)
  );
}
