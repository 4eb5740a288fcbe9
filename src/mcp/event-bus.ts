import { randomUUID } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import type { Registry } from "prom-client";
import { ErrorCode, SessionStoreError } from "../errors.js";
import { isCluster } from "../stores/redis-clients.js";
import { withTimeout } from "../timeout.js";
import type { Logger } from "../types.js";
import { type RedisAccess, redisCall, safely } from "./support.js";
import { type V2Metrics, v2Metrics } from "./v2/metrics.js";

/**
 * A change event for `subscriptions/listen` streams: the SDK's `ServerEvent`, restated so this
 * file needs no SDK. Each kind maps onto one notification method.
 */
export type ChangeEvent = (
  | { kind: "tools_list_changed" }
  | { kind: "prompts_list_changed" }
  | { kind: "resources_list_changed" }
  | { kind: "resource_updated"; uri: string }
) & { params?: Record<string, unknown> };

/** A task changed status (tasks extension); carried beside the change events. */
export interface TaskStatusEvent {
  kind: "task_status";
  taskId: string;
  status: string;
  params?: Record<string, unknown>;
}

/** Anything the bus carries. */
export type BusEvent = ChangeEvent | TaskStatusEvent;

/** Options of `createEventBus`. */
export interface EventBusOptions {
  /** Redis behind the session store (`redisAccessOf(store)`); `undefined` keeps events in this process. */
  redis: RedisAccess | undefined;
  /** Key prefix; the channel is `<prefix>bus`. @default the store's prefix, else "mcp:" */
  prefix?: string;
  /** Where the bus metrics go. */
  registry: Registry;
  logger: Logger;
  /** Called with errors thrown by listeners (they never reach the publisher). */
  onerror?: (error: Error) => void;
}

const CHANGE_KINDS = new Set([
  "tools_list_changed",
  "prompts_list_changed",
  "resources_list_changed",
  "resource_updated",
]);
/** A channel message above this size is not one of ours. */
const MAX_MESSAGE_BYTES = 1 << 20;
/** Publishers remembered for duplicate and gap detection; the oldest is forgotten first. */
const MAX_PUBLISHERS = 10_000;

/** What travels on the channel: publisher instance, its sequence number, publish time (epoch ms). */
interface Envelope {
  i: string;
  s: number;
  t: number;
  e: BusEvent;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The event if `value` is a well-formed one, else `undefined`. */
export function validEvent(value: unknown): BusEvent | undefined {
  if (!isRecord(value) || typeof value.kind !== "string") return undefined;
  if (value.params !== undefined && !isRecord(value.params)) return undefined;
  if (value.kind === "task_status") {
    const ok =
      typeof value.taskId === "string" &&
      value.taskId !== "" &&
      typeof value.status === "string" &&
      value.status !== "";
    return ok ? (value as unknown as TaskStatusEvent) : undefined;
  }
  if (!CHANGE_KINDS.has(value.kind)) return undefined;
  if (value.kind === "resource_updated" && typeof value.uri !== "string") return undefined;
  return value as unknown as ChangeEvent;
}

function parseEnvelope(raw: string): Envelope | undefined {
  if (raw.length > MAX_MESSAGE_BYTES) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed)) return undefined;
  const { i, s, t } = parsed;
  if (typeof i !== "string" || i === "" || !Number.isSafeInteger(s) || (s as number) < 1)
    return undefined;
  if (typeof t !== "number" || !Number.isFinite(t)) return undefined;
  const e = validEvent(parsed.e);
  return e === undefined ? undefined : { i, s: s as number, t, e };
}

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A `ServerEventBus` shared by every process on one Redis: pass it as
 * `createMcpHandler(factory, { bus })`. Local listeners get an event synchronously from
 * `publish` (as the SDK's in-memory bus does); other processes get it through Redis pub/sub
 * (sharded `SPUBLISH` on a Cluster), and a process skips its own echo by instance id, so each
 * listener sees each event once. Without Redis it is an in-process bus with the same API.
 *
 * @example
 * const bus = await createEventBus({ redis: redisAccessOf(store), registry, logger });
 * const handler = createMcpHandler(factory, { bus });
 */
export class EventBus {
  /** Identifies this process's bus in every envelope it publishes. */
  readonly instanceId = randomUUID();
  private readonly changeListeners = new Set<(event: ChangeEvent) => void>();
  private readonly taskListeners = new Set<(event: TaskStatusEvent) => void>();
  private readonly lastSeq = new Map<string, number>();
  private readonly metrics: V2Metrics;
  private seq = 0;
  private closed = false;
  /** The listener running right now, if any: a publish from inside it skips it. */
  private dispatching: ((event: never) => void) | undefined;
  private subscriber: Redis | Cluster | undefined;
  /** On a Cluster: SPUBLISH/SSUBSCRIBE, so an event goes to one shard, not to every node. */
  private sharded = false;
  private readonly channel: string;

  constructor(private readonly options: EventBusOptions) {
    this.metrics = v2Metrics(options.registry);
    this.channel = `${options.prefix ?? options.redis?.prefix ?? "mcp:"}bus`;
  }

  /** Subscribes to the channel on a connection of its own; resolves once Redis confirmed. */
  async start(): Promise<void> {
    const access = this.options.redis;
    if (access === undefined) return;
    const client = access.client;
    const cluster = isCluster(client);
    const onMessage = (_channel: string, raw: string) => this.receive(raw);
    const onError = (err: Error) => this.options.logger.info(`event bus: ${err.message}`);
    if (cluster) {
      this.sharded = true;
      const sub = (client as Cluster).duplicate([], {
        shardedSubscribers: true,
        lazyConnect: true,
      });
      this.subscriber = sub;
      sub.on("smessage", onMessage);
      sub.on("error", onError);
      try {
        await redisCall(access, "SSUBSCRIBE", () => sub.ssubscribe(this.channel));
      } catch (err) {
        sub.disconnect();
        throw err;
      }
      return;
    }
    // Its own connection: a subscribed connection can run no other command. The offline queue
    // lets the automatic re-SUBSCRIBE wait for the reconnect instead of failing.
    const sub = (client as Redis).duplicate({
      lazyConnect: true,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
    });
    this.subscriber = sub;
    sub.on("message", onMessage);
    sub.on("error", onError);
    try {
      await redisCall(access, "SUBSCRIBE", async () => {
        await sub.connect();
        await sub.subscribe(this.channel);
      });
    } catch (err) {
      sub.disconnect();
      throw err;
    }
  }

  /**
   * Delivers `event` to this process's listeners now and to every other process through Redis.
   * Never throws for a Redis outage (the event is then lost for other processes and counted).
   * @throws SessionStoreError ERR_INVALID_ARGUMENT when `event` is not a bus event
   */
  publish(event: BusEvent): void {
    if (validEvent(event) === undefined)
      throw new SessionStoreError(
        ErrorCode.INVALID_ARGUMENT,
        "event must be a change event ({ kind: 'tools_list_changed' | ... }) or { kind: 'task_status', taskId, status }",
      );
    if (this.closed) {
      safely(() => this.metrics.busDropped.inc({ reason: "closed" }));
      return;
    }
    safely(() => this.metrics.busPublished.inc({ kind: event.kind }));
    this.deliver(event);
    const access = this.options.redis;
    if (access === undefined) return;
    this.seq += 1;
    const payload = JSON.stringify({ i: this.instanceId, s: this.seq, t: nowMs(), e: event });
    const client = access.client;
    const send = this.sharded ? "spublish" : "publish";
    redisCall(access, send.toUpperCase(), () => client[send](this.channel, payload)).catch(
      (err: Error) => {
        safely(() => this.metrics.busDropped.inc({ reason: "publish_failed" }));
        this.options.logger.info(`event bus: publish failed: ${err.message}`);
      },
    );
  }

  /**
   * Adds a listener for change events (the SDK's `ServerEventBus.subscribe`).
   * @returns an idempotent unsubscribe
   */
  subscribe(listener: (event: ChangeEvent) => void): () => void {
    this.changeListeners.add(listener);
    return () => {
      this.changeListeners.delete(listener);
    };
  }

  /**
   * Adds a listener for task status events.
   * @returns an idempotent unsubscribe
   */
  subscribeTaskStatus(listener: (event: TaskStatusEvent) => void): () => void {
    this.taskListeners.add(listener);
    return () => {
      this.taskListeners.delete(listener);
    };
  }

  /** Stops receiving and drops every listener. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.changeListeners.clear();
    this.taskListeners.clear();
    const sub = this.subscriber;
    this.subscriber = undefined;
    if (sub === undefined) return;
    try {
      await withTimeout(sub.quit(), 1000);
    } catch {
      // Already gone, or no answer within 1 s: disconnect() below releases it.
    } finally {
      sub.disconnect();
    }
  }

  private receive(raw: string): void {
    if (this.closed) return;
    const envelope = parseEnvelope(raw);
    if (envelope === undefined) {
      safely(() => this.metrics.busDropped.inc({ reason: "malformed" }));
      return;
    }
    if (envelope.i === this.instanceId) return;
    const last = this.lastSeq.get(envelope.i);
    if (last !== undefined && envelope.s <= last) {
      safely(() => this.metrics.busDropped.inc({ reason: "duplicate" }));
      return;
    }
    if (last !== undefined && envelope.s > last + 1)
      safely(() => this.metrics.busLost.inc(envelope.s - last - 1));
    this.remember(envelope.i, envelope.s);
    safely(() => this.metrics.busDeliverySeconds.observe(Math.max(0, nowMs() - envelope.t) / 1000));
    this.deliver(envelope.e);
  }

  private remember(instance: string, seq: number): void {
    // Re-inserted so the Map's order is least recently heard first.
    this.lastSeq.delete(instance);
    this.lastSeq.set(instance, seq);
    if (this.lastSeq.size > MAX_PUBLISHERS) {
      const oldest = this.lastSeq.keys().next().value;
      if (oldest !== undefined) this.lastSeq.delete(oldest);
    }
  }

  private deliver(event: BusEvent): void {
    const listeners: Iterable<(event: never) => void> =
      event.kind === "task_status" ? this.taskListeners : this.changeListeners;
    // The SDK's contract: an event published from inside a listener is not echoed back to it.
    const publisher = this.dispatching;
    // A copy: a listener may unsubscribe itself while we iterate.
    for (const listener of [...listeners]) {
      if (listener === publisher) continue;
      const outer = this.dispatching;
      this.dispatching = listener;
      try {
        (listener as (event: BusEvent) => void)(event);
        safely(() => this.metrics.busDelivered.inc({ kind: event.kind }));
      } catch (err) {
        safely(() => this.metrics.busDropped.inc({ reason: "listener_error" }));
        const error = err instanceof Error ? err : new Error(String(err));
        if (this.options.onerror !== undefined) safely(() => this.options.onerror?.(error));
        else this.options.logger.warn(`event bus: a listener threw: ${error.message}`);
      } finally {
        this.dispatching = outer;
      }
    }
  }
}

/**
 * An `EventBus` on `options.redis` (subscribed before it resolves), or an in-process one.
 *
 * @example
 * const bus = await createEventBus({ redis: redisAccessOf(store), registry: new Registry(), logger: console });
 * const off = bus.subscribe((event) => console.log(event.kind));
 * bus.publish({ kind: "tools_list_changed" });
 */
export async function createEventBus(options: EventBusOptions): Promise<EventBus> {
  const bus = new EventBus(options);
  await bus.start();
  return bus;
}
