import { hashId } from "../codec.js";
import { ErrorCode, SessionStoreError } from "../errors.js";
import type { Lock } from "../types.js";
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

/** `ERR_LOCK_LOST` with the reason in the message; the id appears only as a short hash. */
export function lockLost(resource: string, why: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.LOCK_LOST,
    `Lock of session ${hashId(resource)} lost: ${why}`,
  );
}

class MemoryLock implements Lock {
  readonly fencingToken: number;
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private deadline = 0;
  private done = false;
  expiresAt = 0;

  constructor(
    private readonly manager: MemoryLockManager,
    readonly resource: string,
    private readonly ttlMs: number,
    token: number,
  ) {
    this.fencingToken = token;
    this.arm(ttlMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get held(): boolean {
    return !this.done && performance.now() < this.deadline;
  }

  private arm(ttlMs: number): void {
    clearTimeout(this.timer);
    this.deadline = performance.now() + ttlMs;
    this.expiresAt = Date.now() + ttlMs;
    this.timer = setTimeout(() => this.lose("the lease expired before it was extended"), ttlMs);
    this.timer.unref();
  }

  /** The lease ran out (or the store closed): abort the signal and hand the lock on. */
  lose(why: string, notify = true): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    if (notify) this.manager.notify("lockLost");
    this.controller.abort(lockLost(this.resource, why));
    this.manager.free(this);
  }

  async extend(ttlMs: number = this.ttlMs): Promise<void> {
    checkLease(ttlMs);
    if (this.done) throw lockLost(this.resource, "the lock was released or had already expired");
    // A stalled event loop can run this after the lease is over, before the expiry timer.
    if (performance.now() >= this.deadline) {
      this.lose("the lease expired before it was extended");
      throw lockLost(this.resource, "the lease expired before it was extended");
    }
    this.arm(ttlMs);
  }

  async release(): Promise<void> {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.controller.abort(lockLost(this.resource, "released"));
    this.manager.free(this);
  }
}

/** A lease must be a finite number of ms in the range of a timer. */
export function checkLease(ttlMs: unknown): number {
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs < 1 || ttlMs > 2 ** 31 - 1) {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      `Invalid option "ttl": expected milliseconds, finite, >= 1, got ${String(ttlMs)}`,
      { details: { option: "ttl" } },
    );
  }
  return ttlMs;
}

/**
 * In-process locks with the contract of the Redlock manager: FIFO grants, fencing tokens, lease
 * expiry that aborts `lock.signal`, the same errors. Grants hand the lock straight to the next
 * waiter, so there is no polling at all.
 */
export class MemoryLockManager implements LockManager {
  readonly notify: NotifyObservers;
  private readonly slots = new Map<string, Slot>();
  // One counter for every resource: strictly increasing per resource, and nothing to forget.
  private fence = 0;
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
    this.fence += 1;
    const lock = new MemoryLock(this, resource, ttlMs, this.fence);
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

export function timeoutError(resource: string, waitTimeoutMs: number): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.LOCK_TIMEOUT,
    `Lock of session ${hashId(resource)} is held by another owner (waited ${waitTimeoutMs} ms)`,
    { details: { waitTimeoutMs } },
  );
}

export function abortedError(resource: string, reason: unknown): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.ABORTED,
    `Lock acquisition for session ${hashId(resource)} aborted`,
    {
      cause: reason,
    },
  );
}

export function closedError(): SessionStoreError {
  return new SessionStoreError(ErrorCode.STORE_CLOSED, "The session store is closed");
}
