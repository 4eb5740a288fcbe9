import type { EventStoreLike, JSONRPCMessage, SessionEventStore } from "../event-store.js";
import type { StreamPush } from "./push.js";

/**
 * The event store a session's transport writes to: the session's store, plus a push with each
 * stored message so that the instance writing the stream out (standalone GET, resumed request
 * stream) reads it now. Priming events (empty, stored nowhere) and muted writes wake nobody.
 *
 * With Redis the wake-up travels with the event: the append script publishes it after the XADD,
 * and only while an instance follows the session (its mark, `StreamPush`), so an event is one
 * command and one round trip. Watchers on this instance are woken here; they read the log on the
 * same connection, after the append.
 */
export class PushingEventStore implements EventStoreLike {
  constructor(
    private readonly inner: SessionEventStore,
    private readonly push: StreamPush,
  ) {}

  async storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    if (this.inner.isMuted || Object.keys(message).length === 0) {
      return this.inner.storeEvent(streamId, message);
    }
    const sessionId = this.inner.sessionId;
    const wake = this.push.wake();
    if (wake === undefined) {
      const eventId = await this.inner.storeEvent(streamId, message);
      this.push.notify(sessionId);
      return eventId;
    }
    const stored = this.inner.storeEvent(streamId, message, wake);
    this.push.wakeHere(sessionId);
    return stored;
  }

  getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    return this.inner.getStreamIdForEventId(eventId);
  }

  replayEventsAfter(
    lastEventId: string,
    options: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> },
  ): Promise<string> {
    return this.inner.replayEventsAfter(lastEventId, options);
  }
}
