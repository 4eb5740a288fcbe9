import type { Logger } from "../../types.js";
import { type RedisAccess, safely } from "../support.js";
import type { Channels } from "./channels.js";
import type { CrossInstanceMetrics } from "./metrics.js";

/** Why a watcher is called: new events in the session's log, or the session ended. */
export type PushSignal = "events" | "ended";

/** Options of `StreamPush`. */
export interface StreamPushOptions {
  redis: RedisAccess | undefined;
  channels: Channels;
  instanceId: string;
  metrics: CrossInstanceMetrics;
  logger: Logger;
}

/** What travels on a session's push channel: publisher, time (epoch ms), ended flag. */
interface Wake {
  i: string;
  t: number;
  e?: 1;
}

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Wake-ups for the streams of a session: whoever appends to a session's event log calls
 * `notify`, and whoever writes a stream of that session out (the standalone GET stream, a
 * resumed request stream) `watch`es it, then reads the log from its cursor. The log stays the
 * one source of the messages; a wake-up carries none, so a lost one costs latency until the
 * next, never a message (and a reconnect of the subscriber wakes every watcher).
 */
export class StreamPush {
  private readonly watchers = new Map<string, Set<(signal: PushSignal) => void>>();
  private readonly unsubscribes = new Map<string, Promise<() => void>>();

  constructor(private readonly options: StreamPushOptions) {
    options.channels.onResubscribed(() => {
      for (const set of this.watchers.values()) for (const w of [...set]) w("events");
    });
  }

  private channelOf(sessionId: string): string {
    // The session's hash tag: on a Cluster the wake-up goes to the shard of its event log.
    return this.options.redis?.key(sessionId, "push") ?? `push:${sessionId}`;
  }

  /**
   * Calls `watcher` on every wake-up of `sessionId` until the returned function is called;
   * resolves once wake-ups from other instances are heard.
   * @throws SessionStoreError ERR_BACKEND_UNAVAILABLE when Redis cannot subscribe
   */
  async watch(sessionId: string, watcher: (signal: PushSignal) => void): Promise<() => void> {
    let set = this.watchers.get(sessionId);
    if (set === undefined) {
      set = new Set();
      this.watchers.set(sessionId, set);
    }
    set.add(watcher);
    let subscription = this.unsubscribes.get(sessionId);
    if (subscription === undefined) {
      subscription = this.options.channels.subscribe(this.channelOf(sessionId), (raw) =>
        this.receive(sessionId, raw),
      );
      this.unsubscribes.set(sessionId, subscription);
      subscription.catch(() => {
        if (this.unsubscribes.get(sessionId) === subscription) this.unsubscribes.delete(sessionId);
      });
    }
    const off = () => {
      const current = this.watchers.get(sessionId);
      if (current === undefined || !current.delete(watcher) || current.size > 0) return;
      this.watchers.delete(sessionId);
      const pending = this.unsubscribes.get(sessionId);
      this.unsubscribes.delete(sessionId);
      pending?.then((unsubscribe) => unsubscribe()).catch(() => {});
    };
    try {
      await subscription;
    } catch (err) {
      off();
      throw err;
    }
    return off;
  }

  /** Wakes the watchers of `sessionId` here at once and on other instances through Redis. */
  notify(sessionId: string, signal: PushSignal = "events"): void {
    this.wakeLocal(sessionId, signal);
    const wake: Wake =
      signal === "ended"
        ? { i: this.options.instanceId, t: nowMs(), e: 1 }
        : { i: this.options.instanceId, t: nowMs() };
    if (this.options.redis === undefined) return;
    this.options.channels.publish(this.channelOf(sessionId), JSON.stringify(wake)).catch((err) => {
      // The event is in the log: a watcher elsewhere gets it with the next wake-up or resume.
      this.options.logger.info(
        `stream push: publish failed: ${err instanceof Error ? err.message : String(err)}`,
      );
    });
  }

  /** Watched sessions on this instance. */
  get size(): number {
    return this.watchers.size;
  }

  close(): void {
    for (const set of this.watchers.values()) for (const w of [...set]) w("ended");
    this.watchers.clear();
    for (const pending of this.unsubscribes.values()) {
      pending.then((unsubscribe) => unsubscribe()).catch(() => {});
    }
    this.unsubscribes.clear();
  }

  private wakeLocal(sessionId: string, signal: PushSignal): void {
    const set = this.watchers.get(sessionId);
    if (set !== undefined) for (const w of [...set]) w(signal);
  }

  private receive(sessionId: string, raw: string): void {
    let wake: Wake | undefined;
    try {
      wake = JSON.parse(raw) as Wake;
    } catch {
      return;
    }
    if (typeof wake?.i !== "string" || typeof wake.t !== "number") return;
    // This instance already woke its own watchers in notify().
    if (wake.i === this.options.instanceId) return;
    const sentAt = wake.t;
    safely(() =>
      this.options.metrics.deliverySeconds.observe(
        { kind: "push" },
        Math.max(0, nowMs() - sentAt) / 1000,
      ),
    );
    this.wakeLocal(sessionId, wake.e === 1 ? "ended" : "events");
  }
}
