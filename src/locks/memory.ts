import type { SessionStoreError } from "../errors.js";
import type { Lock } from "../types.js";
import { abortedError, closedError, lockLost, lockReleased, timeoutError } from "./errors.js";
import { checkLease, Lease } from "./lease.js";
import type { LockManager, NotifyObservers } from "./types.js";

interface Waiter {
  ttlMs: number;
  settled: boolean;
  resolve(lock: Lock): void;
  reject(err: SessionStoreError): void;
  cleanup(): void;
}

interface Slot {
  holder: MemoryLock | undefined;
  waiters: Waiter[];
}

/*
 * Tokens start from the wall clock in microseconds (a JS-safe integer until the year 2255) and
 * count up from there, so a restarted process hands out tokens above those of its previous life,
 * unless the clock was stepped back by more than the restart took. One counter for every
 * resource and every manager of the process: strictly increasing, and nothing to forget.
 */
let lastToken = 0;

function nextToken(): number {
  lastToken = Math.max(lastToken + 1, Date.now() * 1000);
  return lastToken;
}

class MemoryLock implements Lock {
  readonly fencingToken: number;
  private readonly controller = new AbortController();
  private readonly lease = new Lease(() => this.lose("the lease expired before it was extended"));
  private done = false;

  constructor(
    private readonly manager: MemoryLockManager,
    readonly resource: string,
    private readonly ttlMs: number,
    token: number,
  ) {
    this.fencingToken = token;
    this.lease.start(ttlMs);
  }

  get expiresAt(): number {
    return this.lease.expiresAt;
  }

  /** Reads aborted as soon as the lease is over, even before its timer has had a turn. */
  get signal(): AbortSignal {
    if (!this.done && this.lease.over) this.lose("the lease expired before it was extended");
    return this.controller.signal;
  }

  get held(): boolean {
    return !this.done && !this.lease.over;
  }

  /** The lease ran out (or the store closed): abort the signal and hand the lock on. */
  lose(why: string, notify = true): void {
    if (this.done) return;
    this.done = true;
    this.lease.stop();
    if (notify) this.manager.notify("lockLost");
    this.controller.abort(lockLost(this.resource, why));
    this.manager.free(this);
  }

  async extend(ttlMs: number = this.ttlMs): Promise<void> {
    checkLease(ttlMs);
    if (this.done) throw lockLost(this.resource, "the lock was released or had already expired");
    if (this.lease.over) {
      this.lose("the lease expired before it was extended");
      throw lockLost(this.resource, "the lease expired before it was extended");
    }
    this.lease.start(ttlMs);
  }

  async release(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.lease.stop();
    this.controller.abort(lockReleased(this.resource));
    this.manager.free(this);
  }
}

/**
 * In-process locks with the contract of the Redlock manager: FIFO grants, fencing tokens, lease
 * expiry that aborts `lock.signal`, the same errors. Grants hand the lock straight to the next
 * waiter, so there is no polling at all.
 */
export class MemoryLockManager implements LockManager {
  readonly notify: NotifyObservers;
  private readonly slots = new Map<string, Slot>();
  private closed = false;

  constructor(options: { notify: NotifyObservers }) {
    this.notify = options.notify;
  }

  acquire(
    resource: string,
    options: { ttlMs: number; waitTimeoutMs: number; signal?: AbortSignal | undefined },
  ): Promise<Lock> {
    if (this.closed) return Promise.reject(closedError());
    const { ttlMs, waitTimeoutMs, signal } = options;
    if (signal?.aborted) return Promise.reject(abortedError(resource, signal.reason));
    let slot = this.slots.get(resource);
    if (slot === undefined) {
      slot = { holder: undefined, waiters: [] };
      this.slots.set(resource, slot);
    }
    if (slot.holder !== undefined && !slot.holder.held)
      slot.holder.lose("the lease expired before it was extended");
    if (slot.holder === undefined && slot.waiters.length === 0)
      return Promise.resolve(this.grant(resource, slot, ttlMs));
    this.notify("lockContention");
    if (waitTimeoutMs <= 0) return Promise.reject(timeoutError(resource, waitTimeoutMs));
    const current = slot;
    return new Promise<Lock>((resolve, reject) => {
      const onAbort = (): void => {
        settle(waiter, current);
        reject(abortedError(resource, signal?.reason));
      };
      const timer = setTimeout(() => {
        settle(waiter, current);
        reject(timeoutError(resource, waitTimeoutMs));
      }, waitTimeoutMs);
      const waiter: Waiter = {
        ttlMs,
        settled: false,
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      current.waiters.push(waiter);
    }).finally(() => this.forget(resource));
  }

  private grant(resource: string, slot: Slot, ttlMs: number): MemoryLock {
    const lock = new MemoryLock(this, resource, ttlMs, nextToken());
    slot.holder = lock;
    return lock;
  }

  /** @internal Called by a lock that was released or lost: the next waiter in line gets it. */
  free(lock: MemoryLock): void {
    const slot = this.slots.get(lock.resource);
    if (slot === undefined || slot.holder !== lock) return;
    slot.holder = undefined;
    const next = slot.waiters.shift();
    if (next === undefined || this.closed) {
      this.forget(lock.resource);
      return;
    }
    next.settled = true;
    next.cleanup();
    next.resolve(this.grant(lock.resource, slot, next.ttlMs));
  }

  private forget(resource: string): void {
    const slot = this.slots.get(resource);
    if (slot !== undefined && slot.holder === undefined && slot.waiters.length === 0)
      this.slots.delete(resource);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const slot of this.slots.values()) {
      for (const waiter of slot.waiters.splice(0)) {
        waiter.settled = true;
        waiter.cleanup();
        waiter.reject(closedError());
      }
      slot.holder?.lose("the store was closed", false);
    }
    this.slots.clear();
  }
}

function settle(waiter: Waiter, slot: Slot): void {
  if (waiter.settled) return;
  waiter.settled = true;
  waiter.cleanup();
  const index = slot.waiters.indexOf(waiter);
  if (index >= 0) slot.waiters.splice(index, 1);
}
