/**
 * The shared log of lock grants and its checks. Times are on one monotonic clock
 * (`performance.timeOrigin + performance.now()`, comparable across processes on one machine).
 */
export interface Grant {
  holder: string;
  token: number;
  /** When acquireLock resolved. */
  start: number;
  /** When the holder stopped working under the lock. */
  end: number;
  /** End of the lease as the lock stated it (`expiresAt`) when the holder stopped. */
  leaseEnd: number;
}

export const REPEATED = "fencing tokens repeated";
export const DECREASED = "fencing tokens decreased";
export const OVERLAPS = "exclusion violations";

export function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}

/** `lock.expiresAt` (epoch ms) on the monotonic clock of `monotonicNow`. */
export function leaseEndOf(expiresAt: number): number {
  return monotonicNow() + (expiresAt - Date.now());
}

/**
 * Where the lease of `lock` ends: `expiresAt`, or earlier when the lock aborted its signal (a
 * failed extension gives the lock up on the nodes at once). Call it at the start of the work.
 */
export function watchLease(lock: { expiresAt: number; signal: AbortSignal }): () => number {
  let abortedAt = lock.signal.aborted ? monotonicNow() : Number.POSITIVE_INFINITY;
  lock.signal.addEventListener("abort", () => {
    abortedAt = monotonicNow();
  });
  return () => Math.min(leaseEndOf(lock.expiresAt), abortedAt);
}

/**
 * In grant order, every token is above all earlier ones, and no grant starts before the valid
 * part of an earlier one (up to its release or its lease end, whichever came first) ended.
 */
export function checkGrants(grants: Grant[]): Array<{ figure: string; detail: string }> {
  const findings: Array<{ figure: string; detail: string }> = [];
  const ordered = [...grants].sort((a, b) => a.start - b.start);
  let top: Grant | undefined;
  let busy: Grant | undefined;
  for (const g of ordered) {
    if (top && g.token <= top.token) {
      findings.push({
        figure: g.token === top.token ? REPEATED : DECREASED,
        detail: `${g.holder} got ${g.token} after ${top.holder} got ${top.token}`,
      });
    }
    if (busy && g.start < Math.min(busy.end, busy.leaseEnd)) {
      const overlap = Math.round(Math.min(busy.end, busy.leaseEnd) - g.start);
      findings.push({
        figure: OVERLAPS,
        detail: `${g.holder} (token ${g.token}) entered ${overlap} ms inside the lease of ${busy.holder} (token ${busy.token})`,
      });
    }
    if (!top || g.token > top.token) top = g;
    if (!busy || Math.min(g.end, g.leaseEnd) > Math.min(busy.end, busy.leaseEnd)) busy = g;
  }
  return findings;
}
