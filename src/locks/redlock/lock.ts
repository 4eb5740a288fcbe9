import type { Lock } from "../../types.js";
import { lockLost, lockReleased, quorumError } from "../errors.js";
import { checkLease, Lease } from "../lease.js";
import type { NotifyObservers } from "../types.js";
import { drift } from "./attempt.js";
import type { Keys } from "./keys.js";
import type { NodeSet } from "./nodes.js";

/** What a lock needs from its manager. */
export interface LockHost {
  readonly nodes: NodeSet;
  /** Leases currently held, released when the manager closes. */
  readonly held: Set<RedlockLock>;
  readonly notify: NotifyObservers;
  /** The ticket of this process's next waiter for `resource` ("" for none). */
  nextTicket(resource: string): string;
}

/**
 * A lease on a quorum of nodes. `signal` aborts when the lease is lost: its end passed (checked
 * whenever the signal is read, not only by a timer), an extension failed, or the store closed.
 */
export class RedlockLock implements Lock {
  private readonly controller = new AbortController();
  private readonly lease = new Lease(() => {
    void this.lose("the lease expired before it was extended");
  });
  private done = false;
  private releasing: Promise<void> | undefined;
  /** Renews a handed-over lease, shorter than asked, to the full ttl. */
  private confirm: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: LockHost,
    readonly resource: string,
    private readonly keys: Keys,
    private readonly value: string,
    private readonly ttlMs: number,
    readonly fencingToken: number,
    validityMs: number,
    leaseMs: number = ttlMs,
  ) {
    this.lease.start(validityMs);
    // A hand-over carries a lease no longer than a queue ticket lives, so that a waiter that is
    // gone cannot block the lock for a whole ttl. A holder that keeps the lock past half of it
    // renews it to the ttl it asked for; most release it before, at no cost.
    if (leaseMs < ttlMs) {
      this.confirm = setTimeout(() => {
        this.confirm = undefined;
        this.extend().catch(() => {});
      }, validityMs / 2);
      this.confirm.unref();
    }
  }

  get expiresAt(): number {
    return this.lease.expiresAt;
  }

  /** Reads aborted as soon as the lease is over, even before its timer has had a turn. */
  get signal(): AbortSignal {
    if (!this.done && this.lease.over) void this.lose("the lease expired before it was extended");
    return this.controller.signal;
  }

  /** The lease is gone: abort the signal, and free whatever nodes still hold our value. */
  lose(why: string, notify = true): Promise<unknown> {
    if (this.done) return Promise.resolve();
    this.done = true;
    this.lease.stop();
    clearTimeout(this.confirm);
    this.host.held.delete(this);
    if (notify) this.host.notify("lockLost");
    this.controller.abort(lockLost(this.resource, why));
    return this.host.nodes.releaseValue(
      this.keys,
      this.value,
      undefined,
      this.fencingToken,
      this.host.nextTicket(this.resource),
    );
  }

  async extend(ttlMs: number = this.ttlMs): Promise<void> {
    checkLease(ttlMs);
    if (this.done) throw lockLost(this.resource, "the lock was released or had already expired");
    const start = performance.now();
    if (this.lease.over) {
      this.lose("the lease expired before it was extended");
      throw lockLost(this.resource, "the lease expired before it was extended");
    }
    const acks = await this.host.nodes.extendValue(this.keys, this.value, ttlMs);
    if (this.done)
      throw lockLost(this.resource, "the lock was released or expired during the extension");
    const validity = ttlMs - (performance.now() - start) - drift(ttlMs);
    if (acks >= this.host.nodes.quorum && validity > 0) {
      clearTimeout(this.confirm);
      this.lease.start(validity);
      return;
    }
    this.lose("an extension did not reach a quorum of nodes in time");
    throw lockLost(this.resource, "an extension did not reach a quorum of nodes in time");
  }

  release(): Promise<void> {
    this.releasing ??= this.doRelease();
    return this.releasing;
  }

  private async doRelease(): Promise<void> {
    const wasHeld = !this.done;
    this.done = true;
    this.lease.stop();
    clearTimeout(this.confirm);
    this.host.held.delete(this);
    if (!this.controller.signal.aborted) this.controller.abort(lockReleased(this.resource));
    const answered = await this.host.nodes.releaseValue(
      this.keys,
      this.value,
      undefined,
      this.fencingToken,
      this.host.nextTicket(this.resource),
    );
    if (wasHeld && answered < this.host.nodes.quorum) {
      throw quorumError(this.resource, "release not confirmed; the lease will expire by itself");
    }
  }
}
