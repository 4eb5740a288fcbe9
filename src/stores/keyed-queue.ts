/**
 * Runs tasks one at a time per key, in arrival order, so that concurrent `updateSession` calls
 * for one id in one process do not race each other into compare-and-set retries.
 *
 * Each task has a budget of backend time (the store's commandTimeout). A task is charged the time
 * during which the task running on its key waits for the backend, from the moment it joins the
 * queue: its own waits and those of the tasks ahead of it, but not the time spent in callers'
 * functions. A waiting task whose budget runs out leaves the queue without ever starting (its
 * write was never sent), so a frozen backend answers every queued call within its own budget
 * instead of one budget per task ahead of it.
 */
export interface QueueSlot {
  /** Budget left for the running task, ms (may be <= 0). */
  remaining(): number;
  /** Marks the key as waiting for the backend until `promise` settles. */
  waitFor<T>(promise: Promise<T>): Promise<T>;
}

interface Entry extends QueueSlot {
  /** The line's backend-wait clock when the task joined. */
  readonly joinedAt: number;
  start(): void;
  expire(): void;
}

class Line {
  readonly waiting: Entry[] = [];
  running = false;
  /** Total ms the running tasks of this key spent waiting for the backend. */
  private waited = 0;
  private since: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly budgetMs: number) {}

  clock(now = performance.now()): number {
    return this.since === undefined ? this.waited : this.waited + (now - this.since);
  }

  left(entry: Entry, now?: number): number {
    return this.budgetMs - (this.clock(now) - entry.joinedAt);
  }

  beginWait(): void {
    this.since = performance.now();
    this.arm();
  }

  endWait(): void {
    if (this.since !== undefined) this.waited += performance.now() - this.since;
    this.since = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One timer per key, for the first waiter (all budgets are equal, so it runs out first). */
  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const first = this.waiting[0];
    if (first === undefined || this.since === undefined || !Number.isFinite(this.budgetMs)) return;
    this.timer = setTimeout(this.expireDue, Math.max(0, Math.ceil(this.left(first))));
  }

  private readonly expireDue = (): void => {
    const now = performance.now();
    while (this.waiting.length > 0 && this.left(this.waiting[0] as Entry, now) <= 0) {
      (this.waiting.shift() as Entry).expire();
    }
    this.arm();
  };
}

export class KeyedQueue {
  private readonly lines = new Map<string, Line>();

  /**
   * @param budgetMs backend time each task may wait, counting the waits of the tasks ahead.
   * @param expired the error of a task whose budget ran out before it started.
   */
  constructor(
    private readonly budgetMs = Number.POSITIVE_INFINITY,
    private readonly expired: (queuedAhead: number) => unknown = () => new Error("expired"),
  ) {}

  /** Runs `task` after the tasks queued before it on `key`, or rejects (without running it). */
  run<T>(key: string, task: (slot: QueueSlot) => Promise<T>): Promise<T> {
    let line = this.lines.get(key);
    if (line === undefined) {
      line = new Line(this.budgetMs);
      this.lines.set(key, line);
    }
    const current = line;
    return new Promise<T>((resolve, reject) => {
      const entry: Entry = {
        joinedAt: current.clock(),
        remaining: () => current.left(entry),
        waitFor: (promise) => {
          current.beginWait();
          return promise.finally(() => current.endWait());
        },
        start: () => {
          task(entry)
            .then(resolve, reject)
            .finally(() => this.next(key, current));
        },
        expire: () => reject(this.expired(ahead)),
      };
      const ahead = current.waiting.length + 1;
      if (current.running) {
        current.waiting.push(entry);
      } else {
        current.running = true;
        entry.start();
      }
    });
  }

  private next(key: string, line: Line): void {
    const entry = line.waiting.shift();
    if (entry !== undefined) {
      entry.start();
      return;
    }
    line.running = false;
    if (this.lines.get(key) === line) this.lines.delete(key);
  }
}
