import type { SessionStore } from "../src/index.js";
import { CounterHistory, checkCounter, checkSeq, SeqHistory, UNVERIFIED } from "./history.js";
import type { Probe } from "./probe.js";

/** Errors a write under fault may end with: the write is then indeterminate, not failed. */
const WRITE_CODES = ["ERR_BACKEND_UNAVAILABLE", "ERR_CONFLICT"] as const;
/** After an error, a writer waits this long so a dead server does not turn into a busy loop. */
const BACKOFF_MS = 20;

type Seq = { seq: number };
type Count = { n: number };

/**
 * Writers on their own keys (`setSession` with an increasing seq) and on shared counters
 * (`updateSession` +1, several writers per counter, so calls queue on one id).
 */
export class Writers {
  private readonly seqs: SeqHistory[];
  private readonly counters: CounterHistory[];
  /** Last seq each writer sent, so a restarted writer keeps increasing. */
  private readonly sent: number[];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly store: SessionStore,
    private readonly probe: Probe,
    private readonly options: { writers: number; counters: number; prefix: string },
  ) {
    this.seqs = Array.from({ length: options.writers }, () => new SeqHistory());
    this.counters = Array.from({ length: options.counters }, () => new CounterHistory());
    this.sent = this.seqs.map(() => 0);
  }

  private seqKey(w: number): string {
    return `${this.options.prefix}w${w}`;
  }

  private counterKey(c: number): string {
    return `${this.options.prefix}c${c}`;
  }

  /** Starts (or restarts, after `stop`) every writer. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loops = this.seqs.map((_, w) => this.loop(w));
  }

  /** Stops the writers; resolves when every call in flight has answered. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(w: number): Promise<void> {
    const seq = this.seqs[w] as SeqHistory;
    const counter = this.counters[w % this.counters.length] as CounterHistory;
    while (this.running) {
      const next = (this.sent[w] as number) + 1;
      this.sent[w] = next;
      const ok = await this.write(w, seq, next);
      const counted = await this.increment(w % this.counters.length, counter);
      if (!ok || !counted) await new Promise((resolve) => setTimeout(resolve, BACKOFF_MS));
    }
  }

  private async write(w: number, history: SeqHistory, seq: number): Promise<boolean> {
    const key = this.seqKey(w);
    try {
      await this.probe.call(`setSession(${key})`, () => this.store.setSession<Seq>(key, { seq }));
      history.acked(seq);
      return true;
    } catch (err) {
      history.failed(seq);
      this.probe.expectCodes(`setSession(${key})`, err, WRITE_CODES);
      return false;
    }
  }

  private async increment(c: number, history: CounterHistory): Promise<boolean> {
    const key = this.counterKey(c);
    try {
      await this.probe.call(`updateSession(${key})`, () =>
        this.store.updateSession<Count>(key, (cur) => ({ n: (cur?.n ?? 0) + 1 })),
      );
      history.acked++;
      return true;
    } catch (err) {
      history.failed++;
      this.probe.expectCodes(`updateSession(${key})`, err, WRITE_CODES);
      return false;
    }
  }

  /** Reads every key through `reader` (retrying while the deployment settles) and checks it. */
  async verify(reader: SessionStore, timeoutMs: number): Promise<void> {
    const read = async <T>(key: string): Promise<T | null | undefined> => {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        try {
          return await reader.getSession<T>(key);
        } catch {
          if (performance.now() > deadline) return undefined;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    };
    for (const [w, history] of this.seqs.entries()) {
      const key = this.seqKey(w);
      const value = await read<Seq>(key);
      if (value === undefined) this.probe.violation(UNVERIFIED, key);
      else for (const f of checkSeq(key, history, value?.seq ?? null)) this.report(f);
    }
    for (const [c, history] of this.counters.entries()) {
      const key = this.counterKey(c);
      const value = await read<Count>(key);
      if (value === undefined) this.probe.violation(UNVERIFIED, key);
      else for (const f of checkCounter(key, history, value?.n ?? null)) this.report(f);
    }
  }

  private report(finding: { figure: string; detail: string }): void {
    this.probe.violation(finding.figure, finding.detail);
  }
}
