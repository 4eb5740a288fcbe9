/**
 * Between node:http and the web-standard `Request`/`Response` that SDK v2's `createMcpHandler`
 * speaks: the request is built from headers and an already-read body, the response is streamed
 * back chunk by chunk (SSE events leave at once), and a client that goes away aborts both.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * Connection-level headers belong to the node server (it honours `Connection: close`, e.g. while
 * draining), never copied from a web response.
 */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade"]);

/** A web `Request` for a node request whose body (if any) was already read into `body`. */
export function toWebRequest(
  req: IncomingMessage,
  body: Buffer | undefined,
  signal: AbortSignal,
): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name.startsWith(":")) continue;
    if (Array.isArray(value)) for (const item of value) headers.append(name, item);
    else headers.set(name, value);
  }
  // Only the path matters to the handler. Without a Host check (ALLOWED_HOSTS=*) the header may
  // be anything: a value that is no host must not fail the request.
  let url: URL;
  try {
    url = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`);
  } catch {
    url = new URL(req.url ?? "/", "http://localhost");
  }
  const method = req.method ?? "GET";
  return new Request(url, {
    method,
    headers,
    signal,
    ...(body === undefined || method === "GET" || method === "HEAD"
      ? {}
      : { body: new Uint8Array(body) }),
  });
}

/** Writes a web `Response` to `res`, streaming its body; stops reading when the client leaves. */
export async function sendWebResponse(response: Response, res: ServerResponse): Promise<void> {
  if (res.headersSent) {
    await response.body?.cancel().catch(() => {});
    return;
  }
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name)) headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  const streaming = String(headers["content-type"] ?? "").includes("text/event-stream");
  // nginx and other proxies must pass each event on at once.
  if (streaming) headers["x-accel-buffering"] = "no";
  res.writeHead(response.status, headers);
  if (response.body === null) {
    res.end();
    return;
  }
  if (streaming) res.flushHeaders();
  const reader = response.body.getReader();
  const stop = () => void reader.cancel().catch(() => {});
  res.once("close", stop);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (res.writableEnded || res.destroyed) break;
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          res.once("drain", resolve);
          res.once("close", resolve);
        });
      }
    }
  } catch {
    // The client left, or the handler aborted the stream: nothing more to send.
  } finally {
    res.off("close", stop);
    stop();
    if (!res.writableEnded) res.end();
  }
}

/** Reads a request body up to `limit` bytes; `null` when it is larger. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return null;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
