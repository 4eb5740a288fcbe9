import type { Cluster, Redis } from "ioredis";
import { withTimeout } from "../../timeout.js";
import type { Logger } from "../../types.js";
import { type RedisAccess, redisCall } from "../support.js";

/** A message listener; `raw` is what was published. */
export type ChannelListener = (raw: string) => void;

/**
 * Named pub/sub channels shared by the instances of one deployment: Redis pub/sub (sharded on a
 * Cluster, so a channel lives on the shard of its hash tag) or, without Redis, this process.
 */
export interface Channels {
  /** Listens on `channel`; resolves once Redis confirmed the subscription. */
  subscribe(channel: string, listener: ChannelListener): Promise<() => void>;
  /** Publishes; resolves with the number of processes that received it. */
  publish(channel: string, raw: string): Promise<number>;
  /** Called after the subscriber connection came back: messages may have been missed. */
  onResubscribed(listener: () => void): void;
  close(): Promise<void>;
}

/** Channels within this process (memory store). */
export class LocalChannels implements Channels {
  private readonly listeners = new Map<string, Set<ChannelListener>>();

  async subscribe(channel: string, listener: ChannelListener): Promise<() => void> {
    let set = this.listeners.get(channel);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(channel) === set) this.listeners.delete(channel);
    };
  }

  async publish(channel: string, raw: string): Promise<number> {
    const set = this.listeners.get(channel);
    if (set === undefined) return 0;
    // Asynchronous like Redis: a publisher never runs its listeners in its own call stack.
    queueMicrotask(() => {
      for (const listener of [...set]) listener(raw);
    });
    return 1;
  }

  onResubscribed(): void {}

  async close(): Promise<void> {
    this.listeners.clear();
  }
}

/**
 * Channels on Redis: one subscriber connection per process, a reference count per channel
 * (SUBSCRIBE on the first listener, UNSUBSCRIBE after the last), publishing on the data client.
 */
export class RedisChannels implements Channels {
  private readonly listeners = new Map<string, Set<ChannelListener>>();
  private readonly resubscribed = new Set<() => void>();
  private readonly subscriber: Redis | Cluster;
  private readonly sharded: boolean;
  private connected: Promise<void> | undefined;
  private everReady = false;
  private closed = false;

  constructor(
    private readonly access: RedisAccess,
    logger: Logger,
  ) {
    const client = access.client;
    this.sharded = "nodes" in client && typeof client.nodes === "function";
    // Its own connection: a subscribed connection runs no other command. The offline queue lets
    // ioredis re-subscribe by itself after a reconnect instead of failing.
    this.subscriber = this.sharded
      ? (client as Cluster).duplicate([], { shardedSubscribers: true, lazyConnect: true })
      : (client as Redis).duplicate({
          lazyConnect: true,
          enableOfflineQueue: true,
          maxRetriesPerRequest: null,
        });
    const onMessage = (channel: string, raw: string) => {
      const set = this.listeners.get(channel);
      if (set !== undefined) for (const listener of [...set]) listener(raw);
    };
    this.subscriber.on(this.sharded ? "smessage" : "message", onMessage);
    this.subscriber.on("error", (err: Error) =>
      logger.info(`cross-instance channels: ${err.message}`),
    );
    this.subscriber.on("ready", () => {
      // The first "ready" is the initial connect; later ones follow an outage.
      if (!this.everReady) {
        this.everReady = true;
        return;
      }
      for (const listener of [...this.resubscribed]) listener();
    });
  }

  private connect(): Promise<void> {
    if (this.connected === undefined) {
      const attempt = redisCall(this.access, "SUBSCRIBE", () =>
        this.sharded ? Promise.resolve() : (this.subscriber as Redis).connect(),
      );
      this.connected = attempt;
      // A failed first connect is retried by the next subscribe.
      attempt.catch(() => {
        if (this.connected === attempt) this.connected = undefined;
      });
    }
    return this.connected;
  }

  async subscribe(channel: string, listener: ChannelListener): Promise<() => void> {
    if (this.closed) throw new Error("channels closed");
    let set = this.listeners.get(channel);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    set.add(listener);
    const off = () => {
      if (!set.delete(listener) || set.size > 0 || this.listeners.get(channel) !== set) return;
      this.listeners.delete(channel);
      if (this.closed) return;
      const sub = this.subscriber;
      const done = this.sharded
        ? (sub as Cluster).sunsubscribe(channel)
        : (sub as Redis).unsubscribe(channel);
      done.catch(() => {});
    };
    try {
      await this.connect();
      // Subscribing again to a channel is harmless, and covers a listener added while the
      // first SUBSCRIBE of that channel was still on its way.
      const sub = this.subscriber;
      await redisCall(this.access, "SUBSCRIBE", () =>
        this.sharded ? (sub as Cluster).ssubscribe(channel) : (sub as Redis).subscribe(channel),
      );
    } catch (err) {
      off();
      throw err;
    }
    return off;
  }

  async publish(channel: string, raw: string): Promise<number> {
    const client = this.access.client;
    const receivers = await redisCall(this.access, "PUBLISH", () =>
      this.sharded ? client.spublish(channel, raw) : client.publish(channel, raw),
    );
    return Number(receivers);
  }

  onResubscribed(listener: () => void): void {
    this.resubscribed.add(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.resubscribed.clear();
    try {
      await withTimeout(this.subscriber.quit(), 1000);
    } catch {
      // Already gone, or no answer within 1 s: disconnect() below releases it.
    } finally {
      this.subscriber.disconnect();
    }
  }
}
