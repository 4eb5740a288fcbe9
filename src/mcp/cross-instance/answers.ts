import { randomBytes } from "node:crypto";
import { ErrorCode, SessionStoreError } from "../../errors.js";
import type { Logger } from "../../types.js";
import { type RedisAccess, redisCall, safely } from "../support.js";
import type { Channels } from "./channels.js";
import type { CrossInstanceMetrics, DropReason } from "./metrics.js";

/** A JSON-RPC id. */
export type RequestId = string | number;

/** A JSON-RPC response or error response, as the client POSTs it. */
export interface AnswerMessage {
  jsonrpc: "2.0";
  id: RequestId;
  result?: unknown;
  error?: unknown;
}

/** Hands an answer (carrying the id the sender chose) to the request waiting for it. */
export type Deliver = (answer: AnswerMessage) => void;

/** Options of `AnswerRouter`. */
export interface AnswerRouterOptions {
  /** Redis behind the session store; `undefined` keeps everything in this process. */
  redis: RedisAccess | undefined;
  channels: Channels;
  /** This process's id: the value of the request records, the name of its channel. */
  instanceId: string;
  metrics: CrossInstanceMetrics;
  logger: Logger;
  /** How long a request record lives in Redis, ms (a client may take long to answer). */
  ttlMs: number;
}

interface Pending {
  originalId: RequestId;
  deliver: Deliver;
  /** The transport that sent it: closing that transport forgets its requests. */
  owner: object;
  expiresAt: number;
}

/** What a POSTed answer became. */
export type RouteOutcome = "delivered" | "routed" | "dropped" | "foreign";

/** What travels on an instance's answer channel. */
interface Envelope {
  s: string;
  m: AnswerMessage;
  t: number;
}

/** Wire ids are ours: `<12 hex of the process>.<sequence>`; anything else is not routed. */
const WIRE_ID = /^[0-9a-f]{12}\.\d{1,15}$/;
const MAX_ENVELOPE_BYTES = 8 << 20;

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function isAnswer(value: unknown): value is AnswerMessage {
  if (typeof value !== "object" || value === null) return false;
  const m = value as Record<string, unknown>;
  return (typeof m.id === "string" || typeof m.id === "number") && ("result" in m || "error" in m);
}

/**
 * Routes the client's answers to server-to-client requests (sampling, elicitation, roots, any
 * custom request) back to the instance that sent the request, wherever the answer is POSTed.
 *
 * Sending: `expect()` gives the request a wire id unique across instances (each instance's SDK
 * numbers its requests from 0 in the same session), records `(session, wire id) -> instance` in
 * Redis and remembers how to deliver the answer here. Receiving: `route()` takes the record
 * atomically (GETDEL: one taker), then delivers here or publishes to the owner's channel; the
 * owner restores the original id and hands the answer to the waiting request. An answer is
 * delivered at most once; one that finds no waiting request is dropped and counted.
 */
export class AnswerRouter {
  private readonly pending = new Map<string, Map<string, Pending>>();
  private readonly tag = randomBytes(6).toString("hex");
  private readonly channel: string;
  private seq = 0;
  private subscribed: Promise<unknown> | undefined;
  private unsubscribe: (() => void) | undefined;
  private closed = false;

  constructor(private readonly options: AnswerRouterOptions) {
    this.channel = `${options.redis?.prefix ?? "mcp:"}answers:${options.instanceId}`;
  }

  /** Listens on this instance's channel (once); rejects with ERR_BACKEND_UNAVAILABLE. */
  private listen(): Promise<unknown> {
    if (this.options.redis === undefined) return Promise.resolve();
    if (this.subscribed === undefined) {
      const attempt = this.options.channels
        .subscribe(this.channel, (raw) => this.receive(raw))
        .then((off) => {
          if (this.closed) off();
          else this.unsubscribe = off;
        });
      this.subscribed = attempt;
      attempt.catch(() => {
        if (this.subscribed === attempt) this.subscribed = undefined;
      });
    }
    return this.subscribed;
  }

  /**
   * Registers a request about to be sent to the client of `sessionId`; resolves with the id to
   * send it under once the answer can find its way back here.
   * @throws SessionStoreError ERR_BACKEND_UNAVAILABLE when Redis cannot record it
   */
  async expect(
    sessionId: string,
    originalId: RequestId,
    deliver: Deliver,
    owner: object,
  ): Promise<string> {
    if (this.closed) throw new SessionStoreError(ErrorCode.STORE_CLOSED, "The handler is closed");
    const wireId = `${this.tag}.${++this.seq}`;
    const access = this.options.redis;
    if (access !== undefined) {
      try {
        await this.listen();
        await redisCall(access, "SET", () =>
          access.client.set(
            access.key(sessionId, `answer:${wireId}`),
            this.options.instanceId,
            "PX",
            this.options.ttlMs,
          ),
        );
      } catch (err) {
        throw new SessionStoreError(
          ErrorCode.BACKEND_UNAVAILABLE,
          `Cannot send the request to the client: its answer could not be routed back (${err instanceof Error ? err.message : String(err)})`,
          { cause: err },
        );
      }
    }
    let requests = this.pending.get(sessionId);
    if (requests === undefined) {
      requests = new Map();
      this.pending.set(sessionId, requests);
    }
    requests.set(wireId, {
      originalId,
      deliver,
      owner,
      expiresAt: Date.now() + this.options.ttlMs,
    });
    if (this.seq % 1024 === 0) this.sweep();
    return wireId;
  }

  /** The wire id of a pending request, by the id its sender chose (for cancellations). */
  wireIdOf(sessionId: string, originalId: RequestId, owner: object): string | undefined {
    const requests = this.pending.get(sessionId);
    if (requests === undefined) return undefined;
    for (const [wireId, p] of requests) {
      if (p.owner === owner && p.originalId === originalId) return wireId;
    }
    return undefined;
  }

  /** Stops waiting for an answer (the request was cancelled, timed out or never sent). */
  forget(sessionId: string, wireId: string): void {
    const requests = this.pending.get(sessionId);
    if (requests?.delete(wireId) !== true) return;
    if (requests.size === 0) this.pending.delete(sessionId);
    this.deleteRecord(sessionId, wireId);
  }

  /** Forgets every request `owner` (a transport) sent in `sessionId`. */
  forgetOwner(sessionId: string, owner: object): void {
    const requests = this.pending.get(sessionId);
    if (requests === undefined) return;
    for (const [wireId, p] of requests) if (p.owner === owner) this.forget(sessionId, wireId);
  }

  /**
   * Takes a client's answer POSTed here. `foreign` means the id is not one this mechanism
   * issued (e.g. a request the SDK queued for a task): the caller hands it to the SDK as before.
   * @throws SessionStoreError ERR_BACKEND_UNAVAILABLE when Redis does not answer
   */
  async route(sessionId: string, message: unknown): Promise<RouteOutcome> {
    if (!isAnswer(message)) return "foreign";
    const wireId = message.id;
    if (typeof wireId !== "string" || !WIRE_ID.test(wireId)) return "foreign";
    if (this.take(sessionId, wireId, message, "local")) {
      this.deleteRecord(sessionId, wireId);
      return "delivered";
    }
    const access = this.options.redis;
    if (access === undefined) return this.drop("unknown");
    let owner: string | null;
    try {
      owner = await redisCall(access, "GETDEL", () =>
        access.client.getdel(access.key(sessionId, `answer:${wireId}`)),
      );
    } catch (err) {
      this.drop("backend_error");
      throw err;
    }
    if (owner === null) return this.drop("unknown");
    if (owner === this.options.instanceId) {
      return this.take(sessionId, wireId, message, "local")
        ? "delivered"
        : this.drop("not_pending");
    }
    const envelope: Envelope = { s: sessionId, m: message, t: nowMs() };
    let receivers: number;
    try {
      receivers = await this.options.channels.publish(
        `${access.prefix}answers:${owner}`,
        JSON.stringify(envelope),
      );
    } catch (err) {
      this.drop("backend_error");
      throw err;
    }
    if (receivers === 0) return this.drop("owner_gone");
    safely(() => this.options.metrics.answersRouted.inc());
    return "routed";
  }

  /** Stops listening; pending requests stay with their transports (they time out there). */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    this.pending.clear();
  }

  private receive(raw: string): void {
    let envelope: Envelope | undefined;
    try {
      envelope = raw.length > MAX_ENVELOPE_BYTES ? undefined : (JSON.parse(raw) as Envelope);
    } catch {
      envelope = undefined;
    }
    if (
      typeof envelope?.s !== "string" ||
      !isAnswer(envelope.m) ||
      typeof envelope.m.id !== "string" ||
      typeof envelope.t !== "number"
    ) {
      this.drop("malformed");
      return;
    }
    const sentAt = envelope.t;
    safely(() =>
      this.options.metrics.deliverySeconds.observe(
        { kind: "answer" },
        Math.max(0, nowMs() - sentAt) / 1000,
      ),
    );
    if (!this.take(envelope.s, envelope.m.id, envelope.m, "remote")) this.drop("not_pending");
  }

  /** Delivers to a request pending here, once; false when none waits for it. */
  private take(
    sessionId: string,
    wireId: string,
    message: AnswerMessage,
    path: "local" | "remote",
  ): boolean {
    const requests = this.pending.get(sessionId);
    const p = requests?.get(wireId);
    if (requests === undefined || p === undefined) return false;
    requests.delete(wireId);
    if (requests.size === 0) this.pending.delete(sessionId);
    safely(() => this.options.metrics.answersDelivered.inc({ path }));
    try {
      p.deliver({ ...message, id: p.originalId });
    } catch (err) {
      this.options.logger.warn(
        `An answer could not be handed to its request: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    return true;
  }

  private drop(reason: DropReason): "dropped" {
    safely(() => this.options.metrics.answersDropped.inc({ reason }));
    return "dropped";
  }

  private deleteRecord(sessionId: string, wireId: string): void {
    const access = this.options.redis;
    if (access === undefined) return;
    // Best effort: a record left behind expires, and an answer that finds it is dropped.
    redisCall(access, "DEL", () =>
      access.client.del(access.key(sessionId, `answer:${wireId}`)),
    ).catch(() => {});
  }

  private sweep(): void {
    const now = Date.now();
    for (const [sessionId, requests] of this.pending) {
      for (const [wireId, p] of requests) if (p.expiresAt <= now) requests.delete(wireId);
      if (requests.size === 0) this.pending.delete(sessionId);
    }
  }
}
