import type { EventStoreLike, JSONRPCMessage, SessionEventStore } from "../event-store.js";
import type { StreamPush } from "./push.js";

/**
 * The event store a session's transport writes to: the session's store, plus a push with each
 * stored message so that the instance writing the stream out (standalone GET, resumed request
 * stream) reads it now. Priming events (empty, stored nowhere) and muted writes wake nobody.
 *
 * The wake is sent in the same tick as the event's XADD, on the same connection (the data
 * client; on a Cluster the session's slot): Redis runs the XADD first, so an instance woken
 * reads the event, and the two share one round trip.
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
    const stored = this.inner.storeEvent(streamId, message);
    this.push.notify(sessionId);
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
