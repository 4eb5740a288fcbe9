import type { IncomingMessage } from "node:http";
import { hashId, printable } from "../../codec.js";
import type { Logger } from "../../types.js";
import type { CrossInstance } from "../cross-instance/index.js";
import { PushingEventStore } from "../cross-instance/pushing-event-store.js";
import type { McpEventStore } from "../event-store.js";
import type { LocalSession, LocalSessions, McpSessionRecord, SessionServer } from "../sessions.js";
import { type McpMetrics, safely } from "../support.js";
import { HttpError } from "./errors.js";
import { messagesOf, requestUrl } from "./node-io.js";
import type { SdkBinding, SessionTransportOptions } from "./sdk.js";

const REPLAY_ID = "mcp-session-store:rebuild";

/** Serialized size of the parts of a record that come from the client. */
export function recordBytes(record: Pick<McpSessionRecord, "clientInfo" | "capabilities">): number {
  return Buffer.byteLength(
    JSON.stringify({ clientInfo: record.clientInfo, capabilities: record.capabilities }),
    "utf8",
  );
}

/** What opening and adopting sessions needs from the handler. */
export interface AdoptionContext {
  sdk: SdkBinding;
  createServer: (sessionId: string) => SessionServer<never> | Promise<SessionServer<never>>;
  transportOptions: SessionTransportOptions;
  eventStore: McpEventStore | undefined;
  cross: CrossInstance;
  local: LocalSessions;
  metrics: McpMetrics;
  logger: Logger;
}

/**
 * Session adoption: a live server + transport for a session, opened fresh at `initialize` or
 * rebuilt from the stored record on an instance that has not served it (the stored `initialize`
 * replayed through public SDK calls). Concurrent requests for one session share one rebuild.
 */
export class Adoption {
  private readonly pending = new Map<string, Promise<LocalSession>>();

  constructor(private readonly ctx: AdoptionContext) {}

  /** A new server + transport for session `id` (not yet in the local cache). */
  async open(id: string, principal: string | null, bytes: number): Promise<LocalSession> {
    const { sdk, cross, local } = this.ctx;
    const events = this.ctx.eventStore?.forSession(id);
    const transport = sdk.createTransport(
      {
        ...this.ctx.transportOptions,
        sessionIdGenerator: () => id,
        ...(events === undefined ? {} : { eventStore: new PushingEventStore(events, cross.push) }),
      },
      cross.answers,
    );
    const server = await this.ctx.createServer(id);
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
    await server.connect(transport as never);
    return session;
  }

  /** The live session for a stored record: one rebuild however many requests ask at once. */
  adopt(
    id: string,
    record: McpSessionRecord,
    req: IncomingMessage,
    auth: unknown,
  ): Promise<LocalSession> {
    let pending = this.pending.get(id);
    if (pending === undefined) {
      pending = this.rebuild(id, record, req, auth).finally(() => this.pending.delete(id));
      this.pending.set(id, pending);
    }
    return pending;
  }

  /** Rebuilds a stored session here by replaying its initialize; throws if the SDK refuses it. */
  private async rebuild(
    id: string,
    record: McpSessionRecord,
    req: IncomingMessage,
    auth: unknown,
  ): Promise<LocalSession> {
    const { local, logger, metrics } = this.ctx;
    const session = await this.open(id, record.principal, recordBytes(record));
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
}
