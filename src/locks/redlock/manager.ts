import type { Lock, Logger } from "../../types.js";
import { abortedError, closedError } from "../errors.js";
import type { LockManager, NotifyObservers } from "../types.js";
import { type AttemptResult, attempt } from "./attempt.js";
import { type Handover, takeHandover } from "./handover.js";
import { type KeySuffix, type Keys, keysOf } from "./keys.js";
import { RedlockLock } from "./lock.js";
import { NodeSet, type NodeState, type RedlockNode } from "./nodes.js";
import { BACKOFF_CAP_MS, type Outcome, Waiters } from "./waiters.js";
import { Wakeups } from "./wakeups.js";

/**
 * The Redlock algorithm (redis.io distributed locks) over N independent Redis masters, with
 * fencing tokens, FIFO grants within a process, a cross-process waiting queue, and releases that
 * hand the lock to the head of that queue (told by pub/sub, counted on a quorum). Works with ioredis `Redis` and `Cluster` clients (every key of a resource shares
 * one hash tag).
 *
 * @example
 * const locks = new RedlockManager({ nodes, key: (id, s) => `app:{${id}}:${s}`, notify,
 *   commandTimeout: 2000, logger: console });
 * const lock = await locks.acquire("session-1", { ttlMs: 5000, waitTimeoutMs: 5000 });
 */
export class RedlockManager implements LockManager {
  readonly notify: NotifyObservers;
  readonly quorum: number;
  /** @internal Leases currently held, released when the manager closes. */
  readonly held = new Set<RedlockLock>();
  /** @internal */
  readonly nodes: NodeSet;
  private readonly waiters: Waiters;
  private readonly wakeups: Wakeups;
  private readonly heartbeatMs: number;
  private closed = false;

  constructor(options: {
    nodes: RedlockNode[];
    key: (id: string, suffix: KeySuffix) => string;
    notify: NotifyObservers;
    commandTimeout: number;
    logger: Logger;
  }) {
    this.notify = options.notify;
    this.nodes = new NodeSet(options.nodes, options);
    this.quorum = this.nodes.quorum;
    // A waiter refreshes its ticket at least every BACKOFF_CAP_MS plus one command.
    this.heartbeatMs = 2 * BACKOFF_CAP_MS + options.commandTimeout;
    this.wakeups = new Wakeups(this.nodes);
    this.waiters = new Waiters({
      notify: options.notify,
      logger: options.logger,
      wakeups: this.wakeups,
      keysOf: (id) => keysOf(options.key, id),
      quorum: this.nodes.quorum,
      attempt: (id, keys, ttlMs, ticket, arrival, stamp) =>
        this.attempt(id, keys, ttlMs, ticket, arrival, stamp),
      handover: (id, keys, ttlMs, ticket, handed) => this.handover(id, keys, ttlMs, ticket, handed),
      dequeue: (keys, ticket) => this.nodes.dequeue(keys, ticket),
    });
  }

  acquire(
    resource: string,
    options: { ttlMs: number; waitTimeoutMs: number; signal?: AbortSignal | undefined },
  ): Promise<Lock> {
    if (this.closed) return Promise.reject(closedError());
    const { ttlMs, waitTimeoutMs, signal } = options;
    if (signal?.aborted) return Promise.reject(abortedError(resource, signal.reason));
    if (waitTimeoutMs <= 0) return this.waiters.once(resource, ttlMs);
    return this.waiters.wait(resource, ttlMs, waitTimeoutMs, signal);
  }

  /** @internal */
  nextTicket(resource: string): string {
    return this.waiters.headTicket(resource);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending: Array<Promise<unknown>> = [this.waiters.close()];
    for (const lock of [...this.held]) pending.push(lock.lose("the store was closed", false));
    await Promise.allSettled(pending);
    this.wakeups.close();
  }

  /** A waiter's lease on a hand-over: no longer than its ticket would stay queued. */
  private handoverMs(ttlMs: number): number {
    return Math.max(1, Math.floor(Math.min(ttlMs, this.heartbeatMs)));
  }

  private async attempt(
    id: string,
    keys: Keys,
    ttlMs: number,
    ticket: string,
    arrival: number,
    stamp: string,
  ): Promise<Outcome> {
    const result = await attempt(this.nodes, keys, {
      ttlMs,
      ticket,
      arrival,
      heartbeatMs: this.heartbeatMs,
      stamp,
      handoverMs: this.handoverMs(ttlMs),
    });
    return this.outcome(id, keys, ttlMs, ttlMs, result);
  }

  private async handover(
    id: string,
    keys: Keys,
    ttlMs: number,
    ticket: string,
    handed: ReadonlyMap<NodeState, Handover>,
  ): Promise<Outcome | undefined> {
    const leaseMs = this.handoverMs(ttlMs);
    const result = await takeHandover(this.nodes, keys, ticket, leaseMs, handed);
    if (result.kind === "fallback") return undefined;
    return this.outcome(id, keys, ttlMs, leaseMs, result);
  }

  private outcome(
    id: string,
    keys: Keys,
    ttlMs: number,
    leaseMs: number,
    result: AttemptResult,
  ): Outcome {
    if (result.kind !== "granted") return result;
    const lock = new RedlockLock(
      this,
      id,
      keys,
      result.value,
      ttlMs,
      result.token,
      result.validityMs,
      leaseMs,
    );
    this.held.add(lock);
    return { kind: "granted", lock };
  }
}
