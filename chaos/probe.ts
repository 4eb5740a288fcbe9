import { isSessionStoreError } from "../src/index.js";

/** What one run of an experiment reports to the supervisor. */
export interface RunReport {
  operations: number;
  /** Figures that must be zero, by name (declared ones appear even when zero). */
  figures: Record<string, number>;
  /** The first violations, in words. */
  details: string[];
  /** Longest wait of a call beyond its own allowance (a lock's waitTimeout), ms. */
  worstMs: number;
  commandTimeoutMs: number;
}

/** Enough to see what went wrong, few enough that one noisy figure does not hide another. */
const DETAILS_PER_FIGURE = 4;

/**
 * Counts operations and violations of one run, and times every call against its bound
 * (commandTimeout + margin, plus the call's own waitTimeout when it has one).
 */
export class Probe {
  operations = 0;
  worstMs = 0;
  readonly figures: Record<string, number> = {};
  readonly details: string[] = [];

  constructor(
    readonly commandTimeoutMs: number,
    readonly marginMs: number,
    figures: string[],
  ) {
    for (const name of [LATE, UNEXPECTED, ...figures]) this.figures[name] = 0;
  }

  violation(figure: string, detail: string): void {
    const count = (this.figures[figure] ?? 0) + 1;
    this.figures[figure] = count;
    if (count <= DETAILS_PER_FIGURE) this.details.push(`${figure}: ${detail}`);
  }

  /** Runs `fn`, timing it; a call over its bound is a violation, whatever its outcome. */
  async call<T>(what: string, fn: () => Promise<T>, allowanceMs = 0): Promise<T> {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      const beyond = performance.now() - start - allowanceMs;
      this.operations++;
      if (beyond > this.worstMs) this.worstMs = beyond;
      if (beyond > this.commandTimeoutMs + this.marginMs) {
        this.violation(LATE, `${what} answered ${Math.round(beyond)} ms after its allowance`);
      }
    }
  }

  /** An error a caller must be ready for is fine; anything else (a TypeError...) is a defect. */
  expectCodes(what: string, err: unknown, codes: readonly string[]): void {
    const code = isSessionStoreError(err) ? err.code : undefined;
    if (code === undefined || !codes.includes(code)) {
      this.violation(UNEXPECTED, `${what}: ${code ?? String(err)}`);
    }
  }

  report(): RunReport {
    return {
      operations: this.operations,
      figures: { ...this.figures },
      details: [...this.details],
      worstMs: Math.round(this.worstMs),
      commandTimeoutMs: this.commandTimeoutMs,
    };
  }
}

export const LATE = "calls past commandTimeout + margin";
export const UNEXPECTED = "unexpected errors";
export const UNHANDLED = "unhandled rejections";
export const UNCAUGHT = "uncaught exceptions";
export const ERRORS = "experiment errors";
