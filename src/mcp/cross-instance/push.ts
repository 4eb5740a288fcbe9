import type { Logger } from "../../types.js";
import { type RedisAccess, redisCall, safely } from "../support.js";
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

/**
 * How long a followed mark lives without a refresh, ms. A follower refreshes it every third of
 * that; a mark left by an instance that stopped costs wake-ups nobody reads until it expires.
 */
const MARK_MS = 60_000;

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
  /** Followed marks this instance keeps alive: the first write, and the refresh timer. */
  private readonly marks = new Map<string, { ready: Promise<void>; timer: NodeJS.Timeout }>();

  constructor(private readonly options: StreamPushOptions) {
    options.channels.onResubscribed(() => {
      for (const set of this.watchers.values()) for (const w of [...set]) w("events");
    });
  }

  /**
   * The session's followed mark `{prefix}{<id>}:followed`: while it exists, an event's append
   * script publishes the wake-up (`wake`); without it, nobody follows and nothing is published.
   */
  private markOf(sessionId: string): string | undefined {
    return this.options.redis?.key(sessionId, "followed");
  }

  private async setMark(sessionId: string): Promise<void> {
    const redis = this.options.redis;
    const mark = this.markOf(sessionId);
    if (redis === undefined || mark === undefined) return;
    await redisCall(redis, "SET", () =>
      redis.client.set(mark, this.options.instanceId, "PX", MARK_MS),
    );
  }

  /** Marks the session followed (once per session here) and keeps the mark alive. */
  private mark(sessionId: string): Promise<void> {
    if (this.options.redis === undefined) return Promise.resolve();
    const held = this.marks.get(sessionId);
    if (held !== undefined) return held.ready;
    let failed = false;
    const timer = setInterval(() => {
      this.setMark(sessionId).then(
        () => {
          // The mark may have lapsed while it could not be refreshed: read the log again.
          if (failed) this.wakeLocal(sessionId, "events");
          failed = false;
        },
        (err: unknown) => {
          failed = true;
          this.options.logger.info(
            `stream push: mark refresh failed: ${err instanceof Error ? err.message : String(err)}`,
          );
        },
      );
    }, MARK_MS / 3);
    timer.unref();
    const ready = this.setMark(sessionId);
    this.marks.set(sessionId, { ready, timer });
    ready.catch(() => {
      if (this.marks.get(sessionId)?.ready === ready) this.unmark(sessionId);
    });
    return ready;
  }

  private unmark(sessionId: string): void {
    const held = this.marks.get(sessionId);
    if (held === undefined) return;
    clearInterval(held.timer);
    this.marks.delete(sessionId);
  }

  /**
   * @internal What an event's append publishes on the session's channel when it is followed
   * (`APPEND_SCRIPT`); undefined without Redis (then `notify`).
   */
  wake(): string | undefined {
    if (this.options.redis === undefined) return undefined;
    const wake: Wake = { i: this.options.instanceId, t: nowMs() };
    return JSON.stringify(wake);
  }

  /** @internal Wakes the watchers of `sessionId` on this instance only. */
  wakeHere(sessionId: string): void {
    this.wakeLocal(sessionId, "events");
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
      // The mark is left to expire: another instance may follow the session too.
      this.unmark(sessionId);
    };
    try {
      await subscription;
      // Subscribed first, then marked: an event appended after the mark wakes this instance,
      // one appended before it is in the log the watcher reads next.
      await this.mark(sessionId);
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
    for (const sessionId of [...this.marks.keys()]) this.unmark(sessionId);
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
