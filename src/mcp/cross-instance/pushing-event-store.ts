import type { EventStoreLike, JSONRPCMessage, SessionEventStore } from "../event-store.js";
import type { StreamPush } from "./push.js";

/**
 * The event store a session's transport writes to: the session's store, plus a push after each
 * stored message so that the instance writing the stream out (standalone GET, resumed request
 * stream) reads it now. Priming events (empty) wake nobody.
 */
export class PushingEventStore implements EventStoreLike {
  constructor(
    private readonly inner: SessionEventStore,
    private readonly push: StreamPush,
  ) {}

  async storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const eventId = await this.inner.storeEvent(streamId, message);
    if (Object.keys(message).length > 0) this.push.notify(this.inner.sessionId);
    return eventId;
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
