import { randomBytes } from "node:crypto";
import type { SessionStoreError } from "../../errors.js";
import type { Lock, Logger } from "../../types.js";
import { abortedError, closedError, quorumError, timeoutError } from "../errors.js";
import type { NotifyObservers } from "../types.js";
import type { AttemptResult } from "./attempt.js";
import { type Handover, parseHandover } from "./handover.js";
import type { Keys } from "./keys.js";
import type { NodeState } from "./nodes.js";
import type { Wakeups } from "./wakeups.js";

/** First retry delay; waiters are woken by pub/sub on release, so polling is only a fallback. */
const BACKOFF_BASE_MS = 50;
export const BACKOFF_CAP_MS = 1000;
/** How long a resource channel stays subscribed after its last waiter, to save SUBSCRIBE churn. */
const LINGER_MS = 10_000;
/**
 * How long the head waits for the other nodes' hand-overs once one node handed it the lock but a
 * quorum has not yet: the releases of all nodes go out together, so they come within a round trip.
 */
const HANDOVER_GRACE_MS = 50;

/** An attempt as the queue sees it: a granted attempt already carries its lock. */
export type Outcome = Exclude<AttemptResult, { kind: "granted" }> | { kind: "granted"; lock: Lock };

interface Waiter {
  readonly ttlMs: number;
  /** Arrival time, epoch ms: the score of the ticket in the cross-process queue. */
  readonly arrival: number;
  readonly ticket: string;
  /** An attempt carrying the ticket was sent, so the ticket may sit in a node's queue. */
  enqueued: boolean;
  attempts: number;
  settled: boolean;
  resolve(lock: Lock): void;
  reject(err: SessionStoreError): void;
  cleanup(): void;
}

interface Resource {
  readonly id: string;
  readonly keys: Keys;
  /** Local FIFO; only the head talks to Redis. */
  readonly queue: Waiter[];
  running: boolean;
  /** Set when a release message named the head's ticket: retry at once. */
  woken: boolean;
  wake: (() => void) | undefined;
  lastFailure: "held" | "quorum" | undefined;
  /** Hand-overs to the head's ticket (`handedTo`), per node, not yet used by an attempt. */
  readonly handed: Map<NodeState, Handover>;
  handedTo: string;
  /** Ends the head's wait when some nodes handed it the lock and the others stay silent. */
  grace: NodeJS.Timeout | undefined;
  subscribed: boolean;
  linger: NodeJS.Timeout | undefined;
}

export interface WaitersOptions {
  notify: NotifyObservers;
  logger: Logger;
  wakeups: Wakeups;
  keysOf(id: string): Keys;
  quorum: number;
  /** One attempt for `ttlMs`, carrying `ticket` ("" for none) with its arrival time and stamp. */
  attempt(
    id: string,
    keys: Keys,
    ttlMs: number,
    ticket: string,
    arrival: number,
    stamp: string,
  ): Promise<Outcome>;
  /** The lock that nodes handed to `ticket`; undefined if too few did, in time. */
  handover(
    id: string,
    keys: Keys,
    ttlMs: number,
    ticket: string,
    handed: ReadonlyMap<NodeState, Handover>,
  ): Promise<Outcome | undefined>;
  /** Takes `ticket` out of every node's queue. */
  dequeue(keys: Keys, ticket: string): Promise<void>;
}

/**
 * Waiting for locks: per resource a local FIFO whose head alone talks to Redis, while its ticket
 * holds its place in the cross-process queue of every node. A release hands the lock to the head
 * of that queue and says so on the channel: once a quorum of nodes did, the head holds the lock
 * without another round trip. Retries (jittered exponential backoff, cut short by a message for
 * the head's ticket or by the end of the holder's lease) are the fallback.
 */
export class Waiters {
  private readonly resources = new Map<string, Resource>();
  private closed = false;

  constructor(private readonly options: WaitersOptions) {}

  /** Waits up to `waitTimeoutMs` for the lock, behind the earlier waiters of this process. */
  wait(
    resource: string,
    ttlMs: number,
    waitTimeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Lock> {
    const state = this.resourceOf(resource);
    return new Promise<Lock>((resolve, reject) => {
      const onAbort = (): void => {
        void this.giveUp(state, waiter, abortedError(resource, signal?.reason));
      };
      const timer = setTimeout(() => {
        const err =
          state.lastFailure === "quorum"
            ? quorumError(resource, `not acquired within ${waitTimeoutMs} ms`)
            : timeoutError(resource, waitTimeoutMs);
        void this.giveUp(state, waiter, err);
      }, waitTimeoutMs);
      const waiter: Waiter = {
        ttlMs,
        arrival: Date.now(),
        // Also the waiter's lock value: as random as an attempt's value.
        ticket: randomBytes(20).toString("hex"),
        enqueued: false,
        attempts: 0,
        settled: false,
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      state.queue.push(waiter);
      if (!state.running) void this.run(state);
    });
  }

  /** One attempt, no waiting and no ticket: the lock, or ERR_LOCK_TIMEOUT / ERR_LOCK_QUORUM. */
  async once(resource: string, ttlMs: number): Promise<Lock> {
    const state = this.resources.get(resource) ?? this.resourceOf(resource);
    const result = await this.options.attempt(resource, state.keys, ttlMs, "", Date.now(), "");
    this.idle(state);
    if (result.kind === "granted") {
      if (!this.closed) return result.lock;
      await result.lock.release().catch(() => {});
      throw closedError();
    }
    if (result.kind === "quorum") throw quorumError(resource, "one attempt failed");
    this.options.notify("lockContention");
    throw timeoutError(resource, 0);
  }

  /** The ticket of the first local waiter for `resource` if it is queued on the nodes, else "". */
  headTicket(resource: string): string {
    const head = this.resources.get(resource)?.queue[0];
    return head?.enqueued && !head.settled ? head.ticket : "";
  }

  /** Rejects every waiter with ERR_STORE_CLOSED (their tickets leave the queues first). */
  async close(): Promise<void> {
    this.closed = true;
    const pending: Array<Promise<unknown>> = [];
    for (const state of this.resources.values()) {
      clearTimeout(state.linger);
      clearTimeout(state.grace);
      for (const waiter of [...state.queue])
        pending.push(this.giveUp(state, waiter, closedError()));
      state.wake?.();
    }
    await Promise.allSettled(pending);
    this.resources.clear();
  }

  private resourceOf(id: string): Resource {
    let state = this.resources.get(id);
    if (state === undefined) {
      state = {
        id,
        keys: this.options.keysOf(id),
        queue: [],
        running: false,
        woken: false,
        wake: undefined,
        lastFailure: undefined,
        handed: new Map(),
        handedTo: "",
        grace: undefined,
        subscribed: false,
        linger: undefined,
      };
      this.resources.set(id, state);
    }
    clearTimeout(state.linger);
    state.linger = undefined;
    return state;
  }

  /** Rejects a waiter (timeout, abort, close); its ticket leaves every node's queue first. */
  private giveUp(state: Resource, waiter: Waiter, err: SessionStoreError): Promise<void> {
    if (waiter.settled) return Promise.resolve();
    waiter.settled = true;
    waiter.cleanup();
    const index = state.queue.indexOf(waiter);
    if (index >= 0) state.queue.splice(index, 1);
    if (index === 0) state.wake?.();
    if (!waiter.enqueued) {
      waiter.reject(err);
      this.idle(state);
      return Promise.resolve();
    }
    return this.options.dequeue(state.keys, waiter.ticket).then(() => {
      waiter.reject(err);
      this.idle(state);
    });
  }

  private async run(state: Resource): Promise<void> {
    state.running = true;
    try {
      for (;;) {
        const waiter = state.queue[0];
        if (waiter === undefined || this.closed) return;
        await this.subscribe(state);
        if (waiter.settled || this.closed) continue;
        waiter.enqueued = true;
        state.woken = false;
        clearTimeout(state.grace);
        state.grace = undefined;
        const result = await this.next(state, waiter);
        if (result.kind === "granted") {
          if (waiter.settled || this.closed) {
            await result.lock.release().catch(() => {});
            continue;
          }
          waiter.settled = true;
          waiter.cleanup();
          state.queue.splice(state.queue.indexOf(waiter), 1);
          waiter.resolve(result.lock);
          continue;
        }
        state.lastFailure = result.kind === "quorum" ? "quorum" : "held";
        if (result.kind !== "quorum") this.options.notify("lockContention");
        if (waiter.settled || this.closed) continue;
        waiter.attempts += 1;
        this.options.notify("lockRetry", waiter.attempts, state.lastFailure);
        if (!state.woken) await this.sleep(state, backoff(waiter.attempts, result));
      }
    } finally {
      state.running = false;
      this.idle(state);
    }
  }

  /** The lock handed to the head by a quorum of nodes, or else one attempt. */
  private async next(state: Resource, waiter: Waiter): Promise<Outcome> {
    const handed = this.handedTo(state, waiter.ticket);
    if (handed.size >= this.options.quorum) {
      const result = await this.guard(() =>
        this.options.handover(state.id, state.keys, waiter.ttlMs, waiter.ticket, handed),
      );
      // Used either way: a fallback attempt takes the handed keys as its own.
      handed.clear();
      if (result !== undefined) return result;
    }
    const stamp = performance.now().toFixed(3);
    const result = await this.guard(() =>
      this.options.attempt(
        state.id,
        state.keys,
        waiter.ttlMs,
        waiter.ticket,
        waiter.arrival,
        stamp,
      ),
    );
    // A hand-over measured from an earlier attempt reached the node before this attempt did,
    // which took that key as its own (and gave it back if it failed). One measured from this
    // attempt came after it: still ours, unless the attempt was granted anyway.
    for (const [node, h] of handed) {
      if (result?.kind === "granted" || h.stamp < Number(stamp)) handed.delete(node);
    }
    return result ?? { kind: "quorum" };
  }

  private async guard<T>(run: () => Promise<T>): Promise<T | undefined> {
    try {
      return await run();
    } catch (err) {
      this.options.logger.error(`Lock attempt failed unexpectedly: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** The hand-overs kept for `ticket` (those of an earlier head are dropped). */
  private handedTo(state: Resource, ticket: string): Map<NodeState, Handover> {
    if (state.handedTo !== ticket) {
      state.handed.clear();
      state.handedTo = ticket;
    }
    return state.handed;
  }

  private sleep(state: Resource, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (state.wake === done) state.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      state.wake = done;
    });
  }

  private async subscribe(state: Resource): Promise<void> {
    if (state.subscribed) return;
    state.subscribed = true;
    await this.options.wakeups.subscribe(state.keys.chan, (message, node) => {
      const head = state.queue[0];
      if (head === undefined) return;
      const handover = parseHandover(message);
      // A ticket that left the local queue is not ours to answer: its dequeue hands the lock on.
      if ((handover?.ticket ?? message) !== head.ticket) return;
      if (handover !== undefined) {
        const handed = this.handedTo(state, head.ticket);
        handed.set(node, handover.handover);
        if (handed.size < this.options.quorum) {
          state.grace ??= setTimeout(() => {
            state.grace = undefined;
            state.woken = true;
            state.wake?.();
          }, HANDOVER_GRACE_MS);
          return;
        }
      }
      state.woken = true;
      state.wake?.();
    });
  }

  /** No waiter left: keep the channel subscribed a little, then forget the resource. */
  private idle(state: Resource): void {
    if (state.running || state.queue.length > 0 || this.resources.get(state.id) !== state) return;
    if (!state.subscribed || this.closed) {
      this.resources.delete(state.id);
      return;
    }
    clearTimeout(state.linger);
    state.linger = setTimeout(() => {
      state.linger = undefined;
      if (state.running || state.queue.length > 0) return;
      this.resources.delete(state.id);
      state.subscribed = false;
      this.options.wakeups.unsubscribe(state.keys.chan);
    }, LINGER_MS);
    state.linger.unref();
  }
}

function backoff(attempts: number, result: Outcome): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempts - 1, 16));
  let delay = ceiling / 2 + (Math.random() * ceiling) / 2;
  // A lease that runs out publishes nothing: be there when it does.
  if (result.kind === "held" && result.pttl >= 0) delay = Math.min(delay, result.pttl + 1);
  return Math.max(1, Math.round(delay));
}
