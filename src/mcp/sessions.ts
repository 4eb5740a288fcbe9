import type { SessionStore } from "../types.js";
import type { SessionEventStore } from "./event-store.js";
import { type McpMetrics, safely } from "./support.js";

/** The client's `clientInfo` from `initialize` (the SDK's `Implementation`). */
export interface ClientInfo {
  name: string;
  version: string;
  [field: string]: unknown;
}

/** The client's capabilities from `initialize` (the SDK's `ClientCapabilities`). */
export type ClientCapabilities = { [capability: string]: unknown };

/**
 * What the integration stores for an MCP session, under the session id, in the field `mcp` of
 * the session's data (the other fields are the application's: keep `mcp` when you update it).
 */
export interface McpSessionRecord {
  /** The protocol version the client asked for in `initialize`. */
  protocolVersion: string;
  clientInfo: ClientInfo;
  capabilities: ClientCapabilities;
  /** Who initialized the session (`principalOf(authInfo)`), or null without authentication. */
  principal: string | null;
  /** Epoch ms. */
  createdAt: number;
}

/**
 * A session's Streamable HTTP server transport, as both SDKs' `WebStandardStreamableHTTPServerTransport`
 * offer it: what the handler core needs, whatever the SDK.
 */
export interface SessionTransport {
  readonly sessionId?: string | undefined;
  onclose?: (() => void) | undefined;
  handleRequest(
    request: Request,
    options?: { parsedBody?: unknown; authInfo?: unknown },
  ): Promise<Response>;
  close(): Promise<void>;
}

/** A server the handler can connect to a transport: an `McpServer` or a low-level `Server`. */
export interface SessionServer<T = SessionTransport> {
  connect(transport: T): Promise<void>;
  close(): Promise<void>;
}

/** A session served by this instance: its server, transport and bookkeeping. */
export interface LocalSession {
  readonly id: string;
  readonly server: SessionServer<never>;
  readonly transport: SessionTransport;
  readonly events: SessionEventStore | undefined;
  readonly principal: string | null;
  /** Serialized size of the client's part of the record: what the byte bound counts. */
  readonly bytes: number;
  lastUsed: number;
  /** POST/DELETE requests in progress (and their SSE streams): a busy session is never evicted. */
  inflight: number;
  /** Open standalone GET streams: the idle timeout may close them (the client reconnects). */
  streaming: number;
  closed: boolean;
}

/** Reads the integration's record out of a session's data; null when it is not an MCP session. */
export function recordOf(data: unknown): McpSessionRecord | null {
  if (typeof data !== "object" || data === null) return null;
  const mcp = (data as { mcp?: unknown }).mcp;
  if (typeof mcp !== "object" || mcp === null) return null;
  const r = mcp as Partial<McpSessionRecord>;
  if (
    typeof r.protocolVersion !== "string" ||
    typeof r.clientInfo !== "object" ||
    r.clientInfo === null
  ) {
    return null;
  }
  return {
    protocolVersion: r.protocolVersion,
    clientInfo: r.clientInfo,
    capabilities:
      typeof r.capabilities === "object" && r.capabilities !== null ? r.capabilities : {},
    principal: typeof r.principal === "string" ? r.principal : null,
    createdAt: typeof r.createdAt === "number" ? r.createdAt : 0,
  };
}

/**
 * The transports this instance holds: an LRU bounded in count and in record bytes, with an idle
 * timeout. Evicting closes the local server and transport only; the session stays in the store
 * and is rebuilt on its next request.
 */
export class LocalSessions {
  private readonly sessions = new Map<string, LocalSession>();
  private readonly sweeper: NodeJS.Timeout | undefined;
  private totalBytes = 0;

  constructor(
    private readonly options: {
      maxLocalSessions: number;
      /** Sum of `bytes` kept at most (busy sessions may exceed it until they finish). */
      maxLocalBytes: number;
      idleTimeoutMs: number;
      metrics: McpMetrics | undefined;
      onClosed: (session: LocalSession) => void;
    },
  ) {
    if (Number.isFinite(options.idleTimeoutMs)) {
      const every = Math.max(250, Math.min(30_000, Math.floor(options.idleTimeoutMs / 2)));
      this.sweeper = setInterval(() => this.sweep(), every);
      this.sweeper.unref();
    }
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Sum of the held sessions' `bytes`. */
  get bytes(): number {
    return this.totalBytes;
  }

  private full(): boolean {
    return (
      this.sessions.size > this.options.maxLocalSessions ||
      this.totalBytes > this.options.maxLocalBytes
    );
  }

  /** The session, marked as the most recently used. */
  get(id: string): LocalSession | undefined {
    const session = this.sessions.get(id);
    if (session === undefined) return undefined;
    this.sessions.delete(id);
    this.sessions.set(id, session);
    session.lastUsed = Date.now();
    return session;
  }

  add(session: LocalSession): void {
    const previous = this.sessions.get(session.id);
    if (previous !== undefined) this.remove(previous);
    this.sessions.set(session.id, session);
    this.totalBytes += session.bytes;
    if (this.full()) {
      // Least recently used first (Map keeps insertion order); busy sessions are skipped.
      for (const candidate of this.sessions.values()) {
        if (!this.full()) break;
        if (candidate.inflight === 0 && candidate.streaming === 0 && candidate !== session) {
          this.evict(candidate);
        }
      }
    }
  }

  private remove(session: LocalSession): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    this.totalBytes -= session.bytes;
  }

  /** Closes the local server and transport (not the stored session). */
  async drop(session: LocalSession): Promise<void> {
    this.remove(session);
    if (session.closed) return;
    session.closed = true;
    this.options.onClosed(session);
    await Promise.allSettled([session.transport.close(), session.server.close()]);
  }

  private evict(session: LocalSession): void {
    safely(() => this.options.metrics?.transportsEvicted.inc());
    void this.drop(session);
  }

  private sweep(): void {
    const horizon = Date.now() - this.options.idleTimeoutMs;
    for (const session of this.sessions.values()) {
      if (session.inflight === 0 && session.lastUsed <= horizon) this.evict(session);
    }
  }

  /** Closes every local session and stops the sweeper. */
  async close(): Promise<void> {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    const all = [...this.sessions.values()];
    this.sessions.clear();
    this.totalBytes = 0;
    await Promise.allSettled(all.map((s) => this.drop(s)));
  }
}

/** Writes the record of a new session. */
export async function storeRecord(
  store: SessionStore,
  id: string,
  record: McpSessionRecord,
  ttl: number | undefined,
): Promise<void> {
  await store.setSession(id, { mcp: record }, ttl === undefined ? undefined : { ttl });
}
