import type { Lock, StoreObserver } from "../types.js";

/** What a store needs from a lock implementation (memory or Redlock). */
export interface LockManager {
  /**
   * Takes the lock of `resource` (a session id, already validated) for `ttlMs`, waiting at most
   * `waitTimeoutMs` (0 = one attempt). Rejects with ERR_LOCK_TIMEOUT, ERR_LOCK_QUORUM,
   * ERR_ABORTED or ERR_STORE_CLOSED.
   */
  acquire(
    resource: string,
    options: { ttlMs: number; waitTimeoutMs: number; signal?: AbortSignal | undefined },
  ): Promise<Lock>;
  /** Stops waiting acquisitions (ERR_STORE_CLOSED), clears timers, closes what it opened. */
  close(): Promise<void>;
}

/** Calls observer hooks without ever letting them throw into the lock path. */
export type NotifyObservers = <K extends keyof StoreObserver>(
  hook: K,
  ...args: Parameters<NonNullable<StoreObserver[K]>>
) => void;
