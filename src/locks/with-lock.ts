import type { Lock } from "../types.js";
import { isReleased } from "./errors.js";

/**
 * Takes a lock, runs `fn(lock)` under it and releases it, whatever `fn` does.
 *
 * While `fn` runs, the lease is extended when 2/3 of it have passed. If an extension fails, or the
 * lease ran out while the process could not run (a blocked event loop, a frozen process), the
 * lock aborts `lock.signal` (reason: `ERR_LOCK_LOST`) and no further extension is tried: `fn`
 * should watch the signal and stop writing. When the lease was lost before `fn` settled, the
 * call rejects with that `ERR_LOCK_LOST` even if `fn` succeeded: its writes may have raced
 * another holder's, which only fencing tokens checked by the storage can stop. An error of `fn`
 * always wins over an error of the release; a failed release after a successful `fn` rejects
 * with the release's error (the work is done, but the lock was not given back). No timer
 * outlives the call.
 *
 * @example
 * await runWithLock(() => manager.acquire(id, { ttlMs: 5000, waitTimeoutMs: 5000 }), async (lock) => {
 *   await db.write(row, { fencingToken: lock.fencingToken });
 * });
 */
export async function runWithLock<T>(
  acquire: () => Promise<Lock>,
  fn: (lock: Lock) => Promise<T>,
): Promise<T> {
  const lock = await acquire();
  let timer: NodeJS.Timeout | undefined;
  let finished = false;

  const schedule = (): void => {
    if (finished || lock.signal.aborted) return;
    const left = lock.expiresAt - Date.now();
    timer = setTimeout(renew, Math.max(0, Math.floor((left * 2) / 3)));
  };
  const renew = (): void => {
    timer = undefined;
    if (finished || lock.signal.aborted) return;
    // The lock aborts its own signal when the extension fails; nothing else to do here.
    lock.extend().then(schedule, () => {});
  };
  const stop = (): void => {
    finished = true;
    clearTimeout(timer);
    timer = undefined;
  };

  schedule();
  let result: T;
  try {
    result = await fn(lock);
  } catch (err) {
    stop();
    await lock.release().catch(() => {});
    throw err;
  }
  stop();
  // Read now, before the release: the signal checks the clock, so a lease that ended while fn
  // was paused reads as lost even if its timer has not fired yet.
  const signal = lock.signal;
  const lost = signal.aborted && !isReleased(signal.reason);
  if (lost) {
    await lock.release().catch(() => {});
    throw signal.reason;
  }
  await lock.release();
  return result;
}
