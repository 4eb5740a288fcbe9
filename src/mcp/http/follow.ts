import type { ServerResponse } from "node:http";
import { followStream } from "../cross-instance/follow.js";
import type { CrossInstance } from "../cross-instance/index.js";
import { sseEvent } from "../cross-instance/standalone.js";
import type { McpEventStore } from "../event-store.js";
import { HttpError, writeHead } from "./errors.js";
import { isResponseMessage } from "./node-io.js";

const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
};

/**
 * Stream following: resumes, on this instance, a request stream whose request runs (or ran) on
 * another one. Replays the stored events after the cursor, then follows the store (pushed)
 * until the response arrives or `maxResumeMs` passes.
 */
export class StreamFollowers {
  private readonly active = new Set<AbortController>();

  constructor(
    private readonly events: McpEventStore,
    private readonly cross: CrossInstance,
    private readonly maxResumeMs: number,
  ) {}

  async follow(id: string, lastEventId: string, res: ServerResponse): Promise<void> {
    const events = this.events;
    if ((await events.streamOf(id, lastEventId)) === undefined) {
      throw new HttpError(400, -32000, "Invalid event ID format");
    }
    const abort = new AbortController();
    this.active.add(abort);
    res.once("close", () => abort.abort());
    writeHead(res, 200, { ...SSE_HEADERS, "mcp-session-id": id });
    res.flushHeaders();
    try {
      await followStream({
        events,
        push: this.cross.push,
        metrics: this.cross.metrics,
        sessionId: id,
        cursor: lastEventId,
        signal: abort.signal,
        deadline: Date.now() + this.maxResumeMs,
        kind: "request",
        write: (event) => {
          res.write(sseEvent(event));
        },
        last: (event) => isResponseMessage(event.message),
      }).catch(() => {
        // The log could not be read (Redis down): ending the stream makes the client resume.
      });
    } finally {
      this.active.delete(abort);
      if (!res.writableEnded) res.end();
    }
  }

  /** Ends every followed stream (the clients resume elsewhere). */
  close(): void {
    for (const abort of this.active) abort.abort();
  }
}
