/**
 * What writers saw, and the checks of the final state against it. Pure: the unit test feeds it
 * made-up histories to prove each check can fail.
 */

/** One writer's own key: it writes 1, 2, 3... and remembers which writes were acknowledged. */
export class SeqHistory {
  lastAcked = 0;
  readonly rejected = new Set<number>();

  acked(seq: number): void {
    if (seq > this.lastAcked) this.lastAcked = seq;
  }

  failed(seq: number): void {
    this.rejected.add(seq);
  }
}

/** A counter shared by writers through `updateSession`: acknowledged and failed increments. */
export class CounterHistory {
  acked = 0;
  failed = 0;
}

export type Finding = { figure: string; detail: string };

export const LOST = "acknowledged writes lost";
export const STALE = "acknowledged writes overwritten by older ones";
export const DUPLICATED = "increments applied more often than sent";
export const UNVERIFIED = "keys not readable after the run";

/**
 * The final value of a writer's key must be at least its last acknowledged seq. A smaller value
 * that the writer saw rejected is a write that landed after a later acknowledged one.
 */
export function checkSeq(key: string, history: SeqHistory, final: number | null): Finding[] {
  const value = final ?? 0;
  if (value >= history.lastAcked) return [];
  const figure = history.rejected.has(value) ? STALE : LOST;
  return [{ figure, detail: `${key} ends at ${value}, last acknowledged ${history.lastAcked}` }];
}

/** A counter must hold every acknowledged increment, and no more than were sent at all. */
export function checkCounter(
  key: string,
  history: CounterHistory,
  final: number | null,
): Finding[] {
  const value = final ?? 0;
  if (value < history.acked) {
    return [{ figure: LOST, detail: `${key} ends at ${value}, ${history.acked} acknowledged` }];
  }
  if (value > history.acked + history.failed) {
    const sent = history.acked + history.failed;
    return [{ figure: DUPLICATED, detail: `${key} ends at ${value}, only ${sent} sent` }];
  }
  return [];
}
