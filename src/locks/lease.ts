import { ErrorCode, SessionStoreError } from "../errors.js";

/**
 * The end of one lease, by two clocks: the monotonic one ignores wall-clock steps, the wall clock
 * keeps counting while the machine sleeps. The lease is over as soon as either says so.
 *
 * The timer only reports the end to those who do not look. After a pause (SIGSTOP, a blocked
 * event loop, a long GC) timers and I/O callbacks that were due earlier run first, so whoever
 * reads the lock's state asks `over` instead of trusting that the timer has fired.
 */
export class Lease {
  /** End of the lease, epoch ms. */
  expiresAt = 0;
  private deadline = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly onEnd: () => void) {}

  /** Starts (or restarts) the lease for `validityMs` from now. */
  start(validityMs: number): void {
    this.stop();
    this.deadline = performance.now() + validityMs;
    this.expiresAt = Date.now() + validityMs;
    this.timer = setTimeout(this.onEnd, Math.ceil(validityMs));
    this.timer.unref();
  }

  get over(): boolean {
    return performance.now() >= this.deadline || Date.now() >= this.expiresAt;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
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
