import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { WebStandardStreamableHTTPServerTransportOptions } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import {
  isInitializeRequest,
  SUPPORTED_PROTOCOL_VERSIONS,
} from "@modelcontextprotocol/sdk/types.js";
import { checkId, hashId, printable } from "../codec.js";
import { ErrorCode, isSessionStoreError, SessionStoreError } from "../errors.js";
import { checkMs, checkTtl } from "../options.js";
import type { Logger } from "../types.js";
import { followStream } from "./cross-instance/follow.js";
import { createCrossInstance } from "./cross-instance/index.js";
import { routeAnswers } from "./cross-instance/post-answers.js";
import { PushingEventStore } from "./cross-instance/pushing-event-store.js";
import { retryWhileClosing } from "./cross-instance/resume.js";
import { RoutedServerTransport } from "./cross-instance/sdk-v1-transport.js";
import { sseEvent } from "./cross-instance/standalone.js";
import { isStandaloneGet, serveStandalone } from "./cross-instance/standalone-get.js";
import { parseEventId, STANDALONE_STREAM_ID } from "./event-store.js";
import type { McpServices } from "./services.js";
import {
  type ConnectableServer,
  type LocalSession,
  LocalSessions,
  type McpSessionRecord,
  recordOf,
  storeRecord,
} from "./sessions.js";
import { mcpMetrics, redisAccessOf, safely } from "./support.js";

/** Options of `createMcpHttpHandler`. */
export interface McpHttpHandlerOptions {
  /**
   * Builds the MCP server of one session (an `McpServer` or a low-level `Server`), with its tools.
   * Called at `initialize`, and again on any instance that rebuilds the session. Pass
   * `services.taskStore` and `services.taskMessageQueue` to the server's options to share tasks.
   */
  createServer: (context: {
    sessionId: string;
    services: McpServices;
  }) => ConnectableServer | Promise<ConnectableServer>;
  /** From `registerRedisBackedServices`. */
  services: McpServices;
  /** New session ids (1..512 visible ASCII). @default crypto.randomUUID */
  sessionIdGenerator?: () => string;
  /** Session TTL in seconds, slid by every request. @default the store's `defaultTtl` */
  sessionTtl?: number;
  /** Sessions this instance keeps a live server + transport for (LRU). @default 1000 */
  maxLocalSessions?: number;
  /**
   * Bytes of session records (client info and capabilities, serialized) whose live server +
   * transport this instance keeps (LRU beyond, like `maxLocalSessions`). @default 33554432
   */
  maxLocalSessionBytes?: number;
  /**
   * Largest session record an `initialize` may create (its client info and capabilities,
   * serialized), bytes: beyond it the request gets 413. Every instance that serves the session
   * holds the record in memory, so keep it small. @default 16384
   */
  maxSessionRecordBytes?: number;
  /** A local transport idle this long (ms, no request in flight) is closed. @default 300000 */
  idleTimeoutMs?: number;
  /** Largest POST body, bytes. @default 4194304 (the SDK's default) */
  maxBodyBytes?: number;
  /** Store SSE events so clients can resume with `Last-Event-ID`, on any instance. @default true */
  resumability?: boolean;
  /**
   * The identity a session is bound to, from the request's `auth` (set by your auth middleware):
   * a request of another principal gets 404. @default auth?.clientId ?? null
   */
  principalOf?: (auth: AuthInfo | undefined) => string | null;
  /** How long a resumed stream of a request running on another instance is followed, ms. @default 300000 */
  maxResumeMs?: number;
  /** Passed to every transport (DNS rebinding protection, JSON responses, retry, keep-alive). */
  transportOptions?: Pick<
    WebStandardStreamableHTTPServerTransportOptions,
    | "allowedHosts"
    | "allowedOrigins"
    | "enableDnsRebindingProtection"
    | "enableJsonResponse"
    | "retryInterval"
    | "keepAliveMs"
  >;
  /** @default the services' logger (console: warnings and errors) */
  logger?: Logger;
  /**
   * How long a server-to-client request (sampling, elicitation, roots) stays answerable on any
   * instance, ms; the SDK's request timeout ends it sooner. @default 3600000
   */
  answerTtlMs?: number;
}

/** A node:http / Express handler with shared sessions. */
export interface McpHttpHandler {
  (
    req: IncomingMessage & { auth?: AuthInfo },
    res: ServerResponse,
    parsedBody?: unknown,
  ): Promise<void>;
  /** Sessions with a live transport on this instance. */
  readonly localSessions: number;
  /** Closes the local transports and servers (not the stored sessions, not the services). */
  close(): Promise<void>;
}

const REPLAY_ID = "mcp-session-store:rebuild";
const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
};
/**
 * Connection-level headers are the node server's business (it honours the client's
 * `Connection: close` and the application's own, e.g. while draining): never copied from the SDK.
 */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade"]);

function invalidOption(option: string, expected: string): never {
  throw new SessionStoreError(
    ErrorCode.INVALID_ARGUMENT,
    `Invalid option "${option}": ${expected}`,
    {
      details: { option },
    },
  );
}

/** Whether `id` is a valid session id (the pattern of `codec.ts`). */
function isValidId(id: unknown): id is string {
  try {
    checkId(id);
    return true;
  } catch {
    return false;
  }
}

/** A JSON-RPC request id, or null. */
type RpcId = string | number | null;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly rpcCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const notFound = () => new HttpError(404, -32001, "Session not found");

/** Sets `headers` with setHeader, so the application (and a drain) can read them back. */
function writeHead(res: ServerResponse, status: number, headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name.toLowerCase())) res.setHeader(name, value);
  }
  res.writeHead(status);
}

function sendError(res: ServerResponse, err: HttpError, id: RpcId): void {
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

/** The id of a single JSON-RPC request (what its error answer must carry), else null. */
function requestIdOf(body: unknown): RpcId {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return null;
  const id = (body as { id?: unknown }).id;
  return typeof id === "string" || typeof id === "number" ? id : null;
}

/** Serialized size of the parts of a record that come from the client. */
function recordBytes(record: Pick<McpSessionRecord, "clientInfo" | "capabilities">): number {
  return Buffer.byteLength(
    JSON.stringify({ clientInfo: record.clientInfo, capabilities: record.capabilities }),
    "utf8",
  );
}

function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const type = (value.split(";")[0] ?? "").trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/** Reads and parses a JSON body, refusing more than `max` bytes. */
async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const tooLarge = () =>
    new HttpError(413, -32000, `Payload Too Large: Request body must not exceed ${max} bytes`, {
      connection: "close",
    });
  if (Number(req.headers["content-length"]) > max) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw tooLarge();
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks, size).toString("utf8"));
  } catch {
    throw new HttpError(400, -32700, "Parse error: Invalid JSON");
  }
}

function webHeaders(req: IncomingMessage): Headers {
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

function requestUrl(req: IncomingMessage): string {
  try {
    return new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`).toString();
  } catch {
    return "http://localhost/";
  }
}

/** Writes a web `Response` to a node response; resolves when it ends or the client leaves. */
async function pipeResponse(response: Response, res: ServerResponse): Promise<void> {
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

function isResponseMessage(message: unknown): boolean {
  return (
    typeof message === "object" &&
    message !== null &&
    "id" in message &&
    ("result" in message || "error" in message)
  );
}

/** Messages of a transport response body: SSE `data:` lines or a JSON document. */
function messagesOf(text: string, contentType: string | null): unknown[] {
  if (contentType?.includes("application/json")) {
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

/** How often, at most, a store outage is logged while requests keep failing with 503. */
const OUTAGE_LOG_EVERY_MS = 10_000;

/**
 * One warning per `OUTAGE_LOG_EVERY_MS` while the store is down, with the number of 503s since
 * the last one: an outage under load must not write a line per request.
 */
class OutageLog {
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

/**
 * The 4xx answer for a store error caused by what the client sent (data that is not storable
 * JSON, a record over the store's limit), or undefined for any other error.
 */
function clientFault(err: unknown): HttpError | undefined {
  if (!isSessionStoreError(err)) return undefined;
  if (err.code === ErrorCode.PAYLOAD_TOO_LARGE) {
    return new HttpError(413, -32602, `Payload Too Large: ${printable(err.message)}`);
  }
  if (err.code === ErrorCode.SERIALIZATION || err.code === ErrorCode.INVALID_ARGUMENT) {
    return new HttpError(400, -32602, `Invalid params: ${printable(err.message)}`);
  }
  return undefined;
}

/**
 * A Streamable HTTP handler (node:http, Express) whose MCP sessions live in the shared store:
 * any instance serves any session. At `initialize` it stores the session record (protocol
 * version, client info and capabilities, principal, creation time); an instance that gets a
 * request for a session it does not hold rebuilds the server and transport through public SDK
 * calls (a transport whose `sessionIdGenerator` returns the stored id, fed the stored
 * `initialize`), then serves the request. Unknown or deleted sessions get 404; DELETE ends the
 * session everywhere; every request slides the TTL; a session answers only its principal.
 *
 * @example
 * const services = await registerRedisBackedServices(null, { redisUrl: process.env.REDIS_URL });
 * const handler = createMcpHttpHandler({
 *   services,
 *   createServer: () => {
 *     const server = new McpServer({ name: "demo", version: "1.0.0" });
 *     server.registerTool("echo", { inputSchema: { text: z.string() } }, async ({ text }) => ({
 *       content: [{ type: "text", text }],
 *     }));
 *     return server;
 *   },
 * });
 * http.createServer((req, res) => void handler(req, res)).listen(3000);
 */
export function createMcpHttpHandler(options: McpHttpHandlerOptions): McpHttpHandler {
  const { services, createServer } = options;
  if (typeof createServer !== "function") invalidOption("createServer", "expected a function");
  if (services === undefined || services.sessionStore === undefined) {
    invalidOption("services", "expected the result of registerRedisBackedServices");
  }
  const store = services.sessionStore;
  const eventStore = (options.resumability ?? true) ? services.eventStore : undefined;
  const logger = options.logger ?? services.logger;
  const generate = options.sessionIdGenerator ?? randomUUID;
  const sessionTtl =
    options.sessionTtl === undefined ? undefined : checkTtl(options.sessionTtl, "sessionTtl");
  const maxBodyBytes = checkMs(options.maxBodyBytes ?? 4 * 1024 * 1024, "maxBodyBytes");
  const maxResumeMs = checkMs(options.maxResumeMs ?? 300_000, "maxResumeMs");
  const maxSessionRecordBytes = checkMs(
    options.maxSessionRecordBytes ?? 16_384,
    "maxSessionRecordBytes",
  );
  const principalOf =
    options.principalOf ?? ((auth: AuthInfo | undefined) => auth?.clientId ?? null);
  const metrics = mcpMetrics(services.registry);
  const transportOptions = options.transportOptions ?? {};
  const local = new LocalSessions({
    maxLocalSessions: options.maxLocalSessions ?? 1000,
    maxLocalBytes: checkMs(
      options.maxLocalSessionBytes ?? 32 * 1024 * 1024,
      "maxLocalSessionBytes",
    ),
    idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
    metrics,
    onClosed: (session) => eventStore?.forgetLocal(session.id),
  });
  const outage = new OutageLog(logger);
  const adopting = new Map<string, Promise<LocalSession>>();
  const followers = new Set<AbortController>();
  const cross = createCrossInstance({
    redis: redisAccessOf(store),
    events: eventStore,
    registry: services.registry,
    logger,
    ...(options.answerTtlMs === undefined
      ? {}
      : { answerTtlMs: checkMs(options.answerTtlMs, "answerTtlMs") }),
    ...(transportOptions.retryInterval === undefined
      ? {}
      : { retryIntervalMs: transportOptions.retryInterval }),
    ...(transportOptions.keepAliveMs === undefined
      ? {}
      : { keepAliveMs: transportOptions.keepAliveMs }),
  });
  let closed = false;

  async function open(id: string, principal: string | null, bytes: number): Promise<LocalSession> {
    const events = eventStore?.forSession(id);
    const transport = new RoutedServerTransport(
      {
        ...transportOptions,
        sessionIdGenerator: () => id,
        ...(events === undefined ? {} : { eventStore: new PushingEventStore(events, cross.push) }),
      },
      cross.answers,
    );
    const server = await createServer({ sessionId: id, services });
    const session: LocalSession = {
      id,
      server,
      transport,
      events,
      principal,
      bytes,
      lastUsed: Date.now(),
      inflight: 0,
      streaming: 0,
      closed: false,
    };
    // Set before connect(): the SDK chains an existing onclose into its own.
    transport.onclose = () => {
      void local.drop(session);
    };
    await server.connect(transport);
    return session;
  }

  /** Rebuilds a stored session here by replaying its initialize; throws if the SDK refuses it. */
  async function rebuild(
    id: string,
    record: McpSessionRecord,
    req: IncomingMessage,
    auth: AuthInfo | undefined,
  ) {
    const session = await open(id, record.principal, recordBytes(record));
    session.events?.mute(true);
    try {
      const response = await session.transport.handleRequest(
        new Request(requestUrl(req), {
          method: "POST",
          headers: {
            accept: "application/json, text/event-stream",
            "content-type": "application/json",
          },
        }),
        {
          parsedBody: {
            jsonrpc: "2.0",
            id: REPLAY_ID,
            method: "initialize",
            params: {
              protocolVersion: record.protocolVersion,
              capabilities: record.capabilities,
              clientInfo: record.clientInfo,
            },
          },
          ...(auth === undefined ? {} : { authInfo: auth }),
        },
      );
      const text = await response.text();
      const messages =
        response.status === 200 ? messagesOf(text, response.headers.get("content-type")) : [];
      const reply = messages.find(
        (m): m is { result: { protocolVersion?: unknown } } =>
          typeof m === "object" &&
          m !== null &&
          (m as { id?: unknown }).id === REPLAY_ID &&
          "result" in m,
      );
      if (
        session.transport.sessionId !== id ||
        typeof reply?.result?.protocolVersion !== "string"
      ) {
        throw new Error(
          `the MCP SDK did not accept the replayed initialize (HTTP ${response.status}); ` +
            "sessions cannot move between instances with this SDK version",
        );
      }
    } catch (err) {
      await local.drop(session);
      logger.error(
        `Could not rebuild MCP session ${hashId(id)} on this instance: ${printable(err instanceof Error ? err.message : String(err))}`,
      );
      throw new HttpError(
        500,
        -32603,
        "Internal error: the session could not be restored on this instance",
      );
    } finally {
      session.events?.mute(false);
    }
    safely(() => metrics.sessionsRebuilt.inc());
    local.add(session);
    return session;
  }

  function adopt(
    id: string,
    record: McpSessionRecord,
    req: IncomingMessage,
    auth: AuthInfo | undefined,
  ) {
    let pending = adopting.get(id);
    if (pending === undefined) {
      pending = rebuild(id, record, req, auth).finally(() => adopting.delete(id));
      adopting.set(id, pending);
    }
    return pending;
  }

  async function serve(
    session: LocalSession,
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    auth: AuthInfo | undefined,
  ): Promise<number> {
    const standalone = req.method === "GET";
    if (standalone) session.streaming++;
    else session.inflight++;
    try {
      const resuming = standalone && req.headers["last-event-id"] !== undefined;
      const response = await retryWhileClosing(resuming, () =>
        session.transport.handleRequest(
          new Request(requestUrl(req), { method: req.method ?? "GET", headers: webHeaders(req) }),
          {
            ...(body === undefined ? {} : { parsedBody: body }),
            ...(auth === undefined ? {} : { authInfo: auth }),
          },
        ),
      );
      const status = response.status;
      await pipeResponse(response, res);
      return status;
    } finally {
      if (standalone) session.streaming--;
      else session.inflight--;
      session.lastUsed = Date.now();
    }
  }

  async function initialize(
    req: IncomingMessage,
    res: ServerResponse,
    body: { params: McpSessionRecord & Record<string, unknown> },
    auth: AuthInfo | undefined,
  ): Promise<void> {
    const id = generate();
    if (!isValidId(id)) {
      throw new Error("sessionIdGenerator must return 1..512 visible ASCII characters");
    }
    const record: McpSessionRecord = {
      protocolVersion: body.params.protocolVersion,
      clientInfo: body.params.clientInfo,
      capabilities: body.params.capabilities ?? {},
      principal: principalOf(auth),
      createdAt: Date.now(),
    };
    const bytes = recordBytes(record);
    if (bytes > maxSessionRecordBytes) {
      throw new HttpError(
        413,
        -32602,
        `Payload Too Large: clientInfo and capabilities take ${bytes} bytes; this server accepts at most ${maxSessionRecordBytes}`,
      );
    }
    try {
      await storeRecord(store, id, record, sessionTtl);
    } catch (err) {
      throw clientFault(err) ?? err;
    }
    let session: LocalSession;
    try {
      session = await open(id, record.principal, bytes);
    } catch (err) {
      await store.deleteSession(id).catch(() => false);
      throw err;
    }
    local.add(session);
    const status = await serve(session, req, res, body, auth);
    if (status !== 200) {
      // The SDK refused the initialize (bad Accept header, ...): nothing must stay behind.
      await local.drop(session);
      await store.deleteSession(id).catch(() => false);
      return;
    }
    safely(() => metrics.sessionsCreated.inc());
  }

  /** A stored session this principal may use, or a 404. */
  async function authorize(
    id: string,
    principal: string | null,
  ): Promise<LocalSession | McpSessionRecord> {
    const held = local.get(id);
    if (held !== undefined) {
      if (held.principal !== principal) throw notFound();
      return held;
    }
    const record = recordOf(await store.getSession(id));
    if (record === null || record.principal !== principal) throw notFound();
    return record;
  }

  /**
   * Resumes a request stream whose request runs (or ran) on another instance: replays the
   * stored events after the cursor, then follows the store (pushed) until the response arrives.
   */
  async function follow(id: string, lastEventId: string, res: ServerResponse): Promise<void> {
    const events = eventStore;
    if (events === undefined) return;
    if ((await events.streamOf(id, lastEventId)) === undefined) {
      throw new HttpError(400, -32000, "Invalid event ID format");
    }
    const abort = new AbortController();
    followers.add(abort);
    res.once("close", () => abort.abort());
    writeHead(res, 200, { ...SSE_HEADERS, "mcp-session-id": id });
    res.flushHeaders();
    try {
      await followStream({
        events,
        push: cross.push,
        metrics: cross.metrics,
        sessionId: id,
        cursor: lastEventId,
        signal: abort.signal,
        deadline: Date.now() + maxResumeMs,
        kind: "request",
        write: (event) => {
          res.write(sseEvent(event));
        },
        last: (event) => isResponseMessage(event.message),
      }).catch(() => {
        // The log could not be read (Redis down): ending the stream makes the client resume.
      });
    } finally {
      followers.delete(abort);
      if (!res.writableEnded) res.end();
    }
  }

  async function route(
    req: IncomingMessage & { auth?: AuthInfo },
    res: ServerResponse,
    parsedBody: unknown,
    request: { id: RpcId },
  ) {
    if (closed) throw new HttpError(503, -32000, "Service Unavailable: shutting down");
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "POST" && method !== "DELETE") {
      throw new HttpError(405, -32000, "Method not allowed.", { allow: "GET, POST, DELETE" });
    }
    const auth = req.auth;
    let body = parsedBody;
    if (method === "POST" && body === undefined) {
      if (!isJsonContentType(req.headers["content-type"])) {
        throw new HttpError(
          415,
          -32000,
          "Unsupported Media Type: Content-Type must be application/json",
        );
      }
      body = await readJson(req, maxBodyBytes);
    }
    request.id = requestIdOf(body);
    const messages = method === "POST" ? (Array.isArray(body) ? body : [body]) : [];
    const initializing = messages.some((m) => isInitializeRequest(m));
    const rawId = req.headers["mcp-session-id"];

    if (rawId === undefined) {
      if (!initializing) {
        throw new HttpError(400, -32000, "Bad Request: Mcp-Session-Id header is required");
      }
      if (messages.length > 1) {
        throw new HttpError(
          400,
          -32600,
          "Invalid Request: Only one initialization request is allowed",
        );
      }
      await initialize(req, res, messages[0] as Parameters<typeof initialize>[2], auth);
      return;
    }
    if (!isValidId(rawId)) {
      throw new HttpError(400, -32000, "Bad Request: invalid Mcp-Session-Id header");
    }
    const id = rawId;
    if (initializing)
      throw new HttpError(400, -32600, "Invalid Request: Server already initialized");
    const principal = principalOf(auth);
    const found = await authorize(id, principal);
    const held = "transport" in found ? found : undefined;

    if (method === "DELETE") {
      await store.deleteSession(id);
      await eventStore?.deleteSession(id).catch((err: unknown) => {
        logger.warn(
          `Could not delete the events of session ${hashId(id)}: ${printable(String(err))}`,
        );
      });
      if (held !== undefined) await local.drop(held);
      cross.push.notify(id, "ended");
      res.writeHead(200).end();
      return;
    }
    // Slides the TTL, and is how a DELETE on another instance is noticed here.
    if (!(await store.touchSession(id, sessionTtl))) {
      if (held !== undefined) await local.drop(held);
      throw notFound();
    }

    const lastEventId = req.headers["last-event-id"];
    if (method === "POST") {
      const rest = await routeAnswers(cross.answers, id, messages, req.headers.accept);
      if (rest.refusal !== undefined) {
        throw new HttpError(rest.refusal.status, rest.refusal.rpcCode, rest.refusal.message);
      }
      if (rest.messages.length === 0) {
        res.writeHead(202).end();
        return;
      }
      if (rest.messages.length < messages.length) body = rest.messages;
    }
    if (method === "GET" && cross.standalone !== undefined && isStandaloneGet(lastEventId)) {
      const refusal = await serveStandalone(
        cross.standalone,
        id,
        req,
        res,
        SUPPORTED_PROTOCOL_VERSIONS,
      );
      if (refusal !== undefined)
        throw new HttpError(refusal.status, refusal.rpcCode, refusal.message);
      return;
    }
    if (method === "GET" && eventStore !== undefined && typeof lastEventId === "string") {
      const cursor = parseEventId(lastEventId);
      if (
        cursor !== undefined &&
        cursor.streamId !== STANDALONE_STREAM_ID &&
        !eventStore.isActiveHere(id, cursor.streamId) &&
        String(req.headers.accept ?? "").includes("text/event-stream")
      ) {
        await follow(id, lastEventId, res);
        return;
      }
    }
    const session = held ?? (await adopt(id, found as McpSessionRecord, req, auth));
    if (session.closed) throw notFound();
    await serve(session, req, res, body, auth);
  }

  const handler = (async (req, res, parsedBody) => {
    const request: { id: RpcId } = { id: requestIdOf(parsedBody) };
    try {
      await route(req, res, parsedBody, request);
    } catch (err) {
      if (err instanceof HttpError) {
        sendError(res, err, request.id);
        return;
      }
      const unavailable = isSessionStoreError(err) && err.code === "ERR_BACKEND_UNAVAILABLE";
      const text = printable(err instanceof Error ? err.message : String(err));
      if (unavailable) outage.report(text);
      else logger.error(`MCP request failed: ${text}`);
      sendError(
        res,
        unavailable
          ? new HttpError(503, -32000, "Service Unavailable: session store unavailable")
          : new HttpError(500, -32603, "Internal error"),
        request.id,
      );
    }
  }) as McpHttpHandler;
  Object.defineProperty(handler, "localSessions", { get: () => local.size });
  handler.close = async () => {
    closed = true;
    for (const abort of followers) abort.abort();
    await cross.close();
    await local.close();
  };
  return handler;
}
