/**
 * A binary min-heap of (expiresAt, id). Entries are never updated in place: a changed expiry pushes
 * a new entry and the old one is recognised as stale when it reaches the top (its time no longer
 * matches the record). `compact` rebuilds it when stale entries outnumber live ones.
 */
export class ExpiryHeap {
  private times: number[] = [];
  private ids: string[] = [];

  get size(): number {
    return this.times.length;
  }

  push(at: number, id: string): void {
    const times = this.times;
    const ids = this.ids;
    let i = times.length;
    times.push(at);
    ids.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = times[parent] as number;
      if (pt <= at) break;
      times[i] = pt;
      ids[i] = ids[parent] as string;
      i = parent;
    }
    times[i] = at;
    ids[i] = id;
  }

  /** Expiry time of the top entry, or Infinity when empty. */
  peekTime(): number {
    return this.times.length > 0 ? (this.times[0] as number) : Number.POSITIVE_INFINITY;
  }

  peekId(): string | undefined {
    return this.ids[0];
  }

  pop(): void {
    const times = this.times;
    const ids = this.ids;
    const lastTime = times.pop() as number;
    const lastId = ids.pop() as string;
    const n = times.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && (times[right] as number) < (times[left] as number) ? right : left;
      if ((times[child] as number) >= lastTime) break;
      times[i] = times[child] as number;
      ids[i] = ids[child] as string;
      i = child;
    }
    times[i] = lastTime;
    ids[i] = lastId;
  }

  /** Rebuilds the heap from the live entries only. */
  compact(live: Iterable<[string, number]>): void {
    this.times = [];
    this.ids = [];
    for (const [id, at] of live) this.push(at, id);
  }

  clear(): void {
    this.times = [];
    this.ids = [];
  }
}
