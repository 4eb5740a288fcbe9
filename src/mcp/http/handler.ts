import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import { hashId, printable } from "../../codec.js";
import { ErrorCode, SessionStoreError } from "../../errors.js";
import { checkMs, checkTtl } from "../../options.js";
import type { Logger, SessionStore } from "../../types.js";
import { createCrossInstance } from "../cross-instance/index.js";
import { routeAnswers } from "../cross-instance/post-answers.js";
import { retryWhileClosing } from "../cross-instance/resume.js";
import { isStandaloneGet, serveStandalone } from "../cross-instance/standalone-get.js";
import { type McpEventStore, parseEventId, STANDALONE_STREAM_ID } from "../event-store.js";
import {
  type LocalSession,
  LocalSessions,
  type McpSessionRecord,
  recordOf,
  type SessionServer,
  storeRecord,
} from "../sessions.js";
import { isValidId, mcpMetrics, redisAccessOf, safely } from "../support.js";
import { Adoption, recordBytes } from "./adoption.js";
import {
  clientFault,
  HttpError,
  notFound,
  OutageLog,
  type RpcId,
  sendError,
  unexpected,
} from "./errors.js";
import { StreamFollowers } from "./follow.js";
import {
  acceptsAll,
  isJsonContentType,
  pipeResponse,
  readJson,
  requestIdOf,
  requestUrl,
  webHeaders,
} from "./node-io.js";
import type { SdkBinding, SessionTransportOptions } from "./sdk.js";

/** What the handler core needs of the services (both SDKs' `registerRedisBackedServices` give it). */
export interface SessionfulServices {
  sessionStore: SessionStore;
  /** Per-session event logs for resumability; without them the handler serves no resumption. */
  eventStore?: McpEventStore | undefined;
  registry: Registry;
  logger: Logger;
}

/**
 * Options of a sessionful handler, whatever the SDK (`McpHttpHandlerOptions` for SDK v1,
 * `LegacyHttpHandlerOptions` for the SDK v2 legacy bridge).
 */
export interface SessionfulHandlerOptions<Services, Server, Auth> {
  /**
   * Builds the MCP server of one session (an `McpServer` or a low-level `Server`), with its tools.
   * Called at `initialize`, and again on any instance that rebuilds the session.
   */
  createServer: (context: { sessionId: string; services: Services }) => Server | Promise<Server>;
  /** From `registerRedisBackedServices`. */
  services: Services;
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
  principalOf?: (auth: Auth | undefined) => string | null;
  /** How long a resumed stream of a request running on another instance is followed, ms. @default 300000 */
  maxResumeMs?: number;
  /** Passed to every transport (DNS rebinding protection, JSON responses, retry, keep-alive). */
  transportOptions?: SessionTransportOptions;
  /** @default the services' logger (console: warnings and errors) */
  logger?: Logger;
  /**
   * How long a server-to-client request (sampling, elicitation, roots) stays answerable on any
   * instance, ms; the SDK's request timeout ends it sooner. @default 3600000
   */
  answerTtlMs?: number;
}

/** A node:http / Express handler with shared sessions. */
export interface SessionfulHandler<Auth> {
  (
    req: IncomingMessage & { auth?: Auth },
    res: ServerResponse,
    parsedBody?: unknown,
  ): Promise<void>;
  /** Sessions with a live transport on this instance. */
  readonly localSessions: number;
  /** Closes the local transports and servers (not the stored sessions, not the services). */
  close(): Promise<void>;
}

function invalidOption(option: string, expected: string): never {
  throw new SessionStoreError(
    ErrorCode.INVALID_ARGUMENT,
    `Invalid option "${option}": ${expected}`,
    {
      details: { option },
    },
  );
}

/** Routing state of one request: the id its error answer carries, once the body is read. */
interface RequestState {
  id: RpcId;
}

/**
 * The sessionful Streamable HTTP handler, for any SDK: `sdk` builds the transports and knows the
 * SDK's protocol constants; everything else is here. Routing reads top to bottom in `route`.
 */
export function createSessionfulHandler<
  Services extends SessionfulServices,
  Server extends SessionServer<never>,
  Auth extends object,
>(
  options: SessionfulHandlerOptions<Services, Server, Auth>,
  sdk: SdkBinding,
  extra: { eventStore?: McpEventStore; onClose?: () => Promise<void> } = {},
): SessionfulHandler<Auth> {
  const { services, createServer } = options;
  if (typeof createServer !== "function") invalidOption("createServer", "expected a function");
  if (services === undefined || services.sessionStore === undefined) {
    invalidOption("services", "expected the result of registerRedisBackedServices");
  }
  const store = services.sessionStore;
  const eventStore =
    (options.resumability ?? true) ? (extra.eventStore ?? services.eventStore) : undefined;
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
    options.principalOf ??
    ((auth: Auth | undefined) => {
      const clientId = (auth as { clientId?: unknown } | undefined)?.clientId;
      return typeof clientId === "string" ? clientId : null;
    });
  // Every option is checked before anything that holds a timer or a connection is built.
  const maxLocalBytes = checkMs(
    options.maxLocalSessionBytes ?? 32 * 1024 * 1024,
    "maxLocalSessionBytes",
  );
  const answerTtlMs =
    options.answerTtlMs === undefined ? undefined : checkMs(options.answerTtlMs, "answerTtlMs");
  const metrics = mcpMetrics(services.registry);
  const transportOptions = options.transportOptions ?? {};
  const local = new LocalSessions({
    maxLocalSessions: options.maxLocalSessions ?? 1000,
    maxLocalBytes,
    idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
    metrics,
    onClosed: (session) => eventStore?.forgetLocal(session.id),
  });
  const outage = new OutageLog(logger);
  const cross = createCrossInstance({
    redis: redisAccessOf(store),
    events: eventStore,
    registry: services.registry,
    logger,
    ...(answerTtlMs === undefined ? {} : { answerTtlMs }),
    ...(transportOptions.retryInterval === undefined
      ? {}
      : { retryIntervalMs: transportOptions.retryInterval }),
    ...(transportOptions.keepAliveMs === undefined
      ? {}
      : { keepAliveMs: transportOptions.keepAliveMs }),
  });
  const adoption = new Adoption({
    sdk,
    createServer: (sessionId) => createServer({ sessionId, services }),
    transportOptions,
    eventStore,
    cross,
    local,
    metrics,
    logger,
  });
  const followers =
    eventStore === undefined ? undefined : new StreamFollowers(eventStore, cross, maxResumeMs);
  let closed = false;

  async function serve(
    session: LocalSession,
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    auth: Auth | undefined,
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
    auth: Auth | undefined,
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
      session = await adoption.open(id, record.principal, bytes);
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

  /** DELETE: ends the session in the store, its events, and on every instance. */
  async function end(id: string, held: LocalSession | undefined, res: ServerResponse) {
    // Record, events and the "ended" wake are sent together (one round trip): on one connection
    // Redis runs them in order, and a failure of the record's delete fails the request.
    const removed = store.deleteSession(id);
    const events = eventStore?.deleteSession(id).catch((err: unknown) => {
      logger.warn(
        `Could not delete the events of session ${hashId(id)}: ${printable(String(err))}`,
      );
    });
    cross.push.notify(id, "ended");
    await removed;
    await events;
    if (held !== undefined) await local.drop(held);
    res.writeHead(200).end();
  }

  async function route(
    req: IncomingMessage & { auth?: Auth },
    res: ServerResponse,
    parsedBody: unknown,
    request: RequestState,
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
    const initializing = messages.some((m) => sdk.isInitializeRequest(m));
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
    const found = await authorize(id, principalOf(auth));
    const held = "transport" in found ? found : undefined;

    if (method === "DELETE") {
      await end(id, held, res);
      return;
    }
    // Slides the TTL, and is how a DELETE on another instance is noticed here.
    // The event log's expiry slides with it, in the same round trip (so an event write need not).
    const sliding = eventStore?.slide(id).catch(() => {});
    const touched = await store.touchSession(id, sessionTtl);
    await sliding;
    if (!touched) {
      if (held !== undefined) await local.drop(held);
      throw notFound();
    }

    const lastEventId = req.headers["last-event-id"];
    if (method === "POST") {
      // Answers to server-to-client requests go to the instance that asked.
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
      // The standalone stream: served here from the session's log, pushed from any instance.
      const refusal = await serveStandalone(
        cross.standalone,
        id,
        req,
        res,
        sdk.supportedProtocolVersions,
      );
      if (refusal !== undefined)
        throw new HttpError(refusal.status, refusal.rpcCode, refusal.message);
      return;
    }
    if (method === "GET" && followers !== undefined && typeof lastEventId === "string") {
      // A request stream resumed here while its request runs elsewhere: follow it.
      const cursor = parseEventId(lastEventId);
      if (
        cursor !== undefined &&
        cursor.streamId !== STANDALONE_STREAM_ID &&
        !eventStore?.isActiveHere(id, cursor.streamId) &&
        acceptsAll(req.headers.accept, ["text/event-stream"])
      ) {
        await followers.follow(id, lastEventId, res);
        return;
      }
    }
    const session = held ?? (await adoption.adopt(id, found as McpSessionRecord, req, auth));
    if (session.closed) throw notFound();
    await serve(session, req, res, body, auth);
  }

  const handler = (async (req, res, parsedBody) => {
    const request: RequestState = { id: requestIdOf(parsedBody) };
    try {
      await route(req, res, parsedBody, request);
    } catch (err) {
      sendError(res, err instanceof HttpError ? err : unexpected(err, logger, outage), request.id);
    }
  }) as SessionfulHandler<Auth>;
  Object.defineProperty(handler, "localSessions", { get: () => local.size });
  handler.close = async () => {
    closed = true;
    followers?.close();
    await cross.close();
    await local.close();
    await extra.onClose?.();
  };
  return handler;
}
