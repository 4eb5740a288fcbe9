import type { ServerResponse } from "node:http";
import { TimeoutError, withTimeout } from "../../timeout.js";
import {
  type JSONRPCMessage,
  type McpEventStore,
  STANDALONE_STREAM_ID,
  type StoredEvent,
} from "../event-store.js";
import { followStream } from "./follow.js";
import type { CrossInstanceMetrics } from "./metrics.js";
import type { StreamPush } from "./push.js";

/** Options of `StandaloneStreams`. */
export interface StandaloneStreamsOptions {
  events: McpEventStore;
  push: StreamPush;
  metrics: CrossInstanceMetrics;
  /** `retry:` of the priming event, ms. */
  retryIntervalMs?: number;
  /** Comment lines this often keep idle proxies from closing the stream, ms. */
  keepAliveMs?: number;
  /** How long a resume waits for the session's previous stream here to close, ms. @default 1000 */
  closeWaitMs?: number;
}

/** A request the stream cannot serve, as an HTTP status and JSON-RPC error. */
export interface StreamRefusal {
  status: number;
  rpcCode: number;
  message: string;
}

interface OpenStream {
  abort: AbortController;
  closed: Promise<void>;
}

/** The SDK's SSE headers, less the hop-by-hop `connection` (the HTTP server owns it). */
export const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
};

/** One SSE event, as the SDK writes them. */
export function sseEvent(event: StoredEvent): string {
  return `event: message\nid: ${event.eventId}\ndata: ${JSON.stringify(event.message)}\n\n`;
}

/**
 * The standalone (GET) streams of the sessions, served from the session's event log: any
 * instance's server-to-client messages without a related request (list changes, resource
 * updates, logging, requests) are stored there and pushed to the instance holding the stream,
 * which writes them out in log order. A resume (`Last-Event-ID`) on any instance replays what
 * the client missed, then follows the same way.
 */
export class StandaloneStreams {
  private readonly open = new Map<string, OpenStream>();

  constructor(private readonly options: StandaloneStreamsOptions) {}

  /** Open standalone streams on this instance. */
  get size(): number {
    return this.open.size;
  }

  /**
   * Serves the GET stream of `sessionId` on `res` until the client leaves, the session ends or
   * `close()`; returns a refusal instead when it cannot (nothing written then).
   */
  async serve(
    sessionId: string,
    res: ServerResponse,
    context: { lastEventId: string | undefined; protocolVersion: string },
  ): Promise<StreamRefusal | undefined> {
    const { events } = this.options;
    const { lastEventId } = context;
    const previous = this.open.get(sessionId);
    if (previous !== undefined) {
      if (lastEventId === undefined) {
        return {
          status: 409,
          rpcCode: -32000,
          message: "Conflict: Only one SSE stream is allowed per session",
        };
      }
      // The client lost its stream and resumed before this side noticed: let the old one finish.
      await waitFor(previous.closed, this.options.closeWaitMs ?? 1000);
      previous.abort.abort();
      await previous.closed;
    }
    let cursor: string;
    let priming = false;
    if (lastEventId !== undefined) {
      if ((await events.streamOf(sessionId, lastEventId)) !== STANDALONE_STREAM_ID) {
        return { status: 400, rpcCode: -32000, message: "Invalid event ID format" };
      }
      cursor = lastEventId;
    } else {
      // Stored, so the stream has a cursor in the log from its first byte.
      cursor = await events
        .forSession(sessionId)
        .storeEvent(STANDALONE_STREAM_ID, {} as JSONRPCMessage);
      priming = context.protocolVersion >= "2025-11-25";
    }
    // Another GET of this session may have opened meanwhile: the newest one wins.
    this.open.get(sessionId)?.abort.abort();
    const abort = new AbortController();
    let markClosed = () => {};
    const stream: OpenStream = { abort, closed: new Promise((resolve) => (markClosed = resolve)) };
    this.open.set(sessionId, stream);
    const onClose = () => abort.abort();
    res.once("close", onClose);
    let keepAlive: NodeJS.Timeout | undefined;
    try {
      // With setHeader, so that the application (a drain, say) can read them back.
      for (const [name, value] of Object.entries(SSE_HEADERS)) res.setHeader(name, value);
      res.setHeader("mcp-session-id", sessionId);
      res.writeHead(200);
      if (priming) {
        const retry = this.options.retryIntervalMs;
        res.write(`id: ${cursor}\n${retry === undefined ? "" : `retry: ${retry}\n`}data: \n\n`);
      }
      res.flushHeaders();
      const every = this.options.keepAliveMs;
      if (every !== undefined && every > 0) {
        keepAlive = setInterval(() => res.write(": keepalive\n\n"), every);
        keepAlive.unref();
      }
      await followStream({
        events,
        push: this.options.push,
        metrics: this.options.metrics,
        sessionId,
        cursor,
        signal: abort.signal,
        kind: "standalone",
        write: (event) => {
          res.write(sseEvent(event));
        },
      }).catch(() => {
        // The log could not be read (Redis down): ending the stream makes the client resume.
      });
    } finally {
      if (keepAlive !== undefined) clearInterval(keepAlive);
      res.off("close", onClose);
      if (this.open.get(sessionId) === stream) this.open.delete(sessionId);
      if (!res.writableEnded) res.end();
      markClosed();
    }
    return undefined;
  }

  /** Ends the session's stream here (the session was deleted). */
  end(sessionId: string): void {
    this.open.get(sessionId)?.abort.abort();
  }

  /** Ends every stream. */
  close(): void {
    for (const stream of this.open.values()) stream.abort.abort();
  }
}

/** Resolves when `promise` does, or after `ms` at most. */
async function waitFor(promise: Promise<void>, ms: number): Promise<void> {
  await withTimeout(promise, ms).catch((err: unknown) => {
    if (!(err instanceof TimeoutError)) throw err;
  });
}
