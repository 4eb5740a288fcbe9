import type { McpEventStore, StoredEvent } from "../event-store.js";
import { safely } from "../support.js";
import type { CrossInstanceMetrics } from "./metrics.js";
import type { StreamPush } from "./push.js";

/** What `followStream` needs. */
export interface FollowOptions {
  events: McpEventStore;
  push: StreamPush;
  metrics: CrossInstanceMetrics;
  sessionId: string;
  /** The event id the client holds (`Last-Event-ID` or a priming event). */
  cursor: string;
  /** Writes one event to the client. */
  write: (event: StoredEvent) => void;
  /** True when the stream is complete after this message (a request stream's response). */
  last?: (event: StoredEvent) => boolean;
  /** Ends the stream: the client left, or the instance shuts down. */
  signal: AbortSignal;
  /** Epoch ms after which the stream ends. @default never */
  deadline?: number;
  /** The `stream` label of the pushed-messages counter. */
  kind: "standalone" | "request";
}

/** How a followed stream ended. */
export type FollowEnd = "complete" | "aborted" | "deadline" | "ended";

/**
 * Writes a session stream from its event log: what is stored after the cursor now, then what is
 * stored later, read when a push arrives (no polling). Ends on `last`, abort, deadline, or when
 * the session ends. Rejects when the log cannot be read (the client resumes later).
 */
export async function followStream(options: FollowOptions): Promise<FollowEnd> {
  const { events, sessionId, signal } = options;
  let cursor = options.cursor;
  let dirty = true;
  let replay = true;
  let ended = false;
  let wake: (() => void) | undefined;
  const rouse = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const stop = await options.push.watch(sessionId, (pushSignal) => {
    if (pushSignal === "ended") ended = true;
    dirty = true;
    rouse();
  });
  signal.addEventListener("abort", rouse, { once: true });
  const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;
  if (Number.isFinite(deadline)) {
    timer = setTimeout(rouse, Math.max(0, deadline - Date.now()));
    timer.unref();
  }
  try {
    for (;;) {
      if (signal.aborted) return "aborted";
      if (dirty) {
        dirty = false;
        const batch = (await events.eventsAfter(sessionId, cursor)) ?? [];
        for (const event of batch) {
          if (signal.aborted) return "aborted";
          options.write(event);
          cursor = event.eventId;
          if (options.last?.(event) === true) {
            count(options, batch.indexOf(event) + 1, replay);
            return "complete";
          }
        }
        count(options, batch.length, replay);
        replay = false;
        continue;
      }
      if (ended) return "ended";
      if (Date.now() >= deadline) return "deadline";
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    stop();
    signal.removeEventListener("abort", rouse);
    if (timer !== undefined) clearTimeout(timer);
  }
}

/**
 * The first read replays what the client missed; later reads follow a push. Everything written
 * on a resumed request stream was resumed, so it counts as replayed too.
 */
function count(options: FollowOptions, n: number, replay: boolean): void {
  if (n === 0) return;
  if (replay || options.kind === "request") options.events.countReplayed(n);
  if (!replay) safely(() => options.metrics.messagesPushed.inc({ stream: options.kind }, n));
}
