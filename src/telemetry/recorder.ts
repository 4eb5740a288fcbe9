import type { Counter, Gauge } from "prom-client";
import { errorCodeOf } from "../errors.js";
import type { Backend } from "../types.js";
import { histogramSeries } from "./bound-series.js";
import {
  EXPECTED_ERROR_CODES,
  LOCK_OUTCOMES,
  type LockOutcome,
  OPERATIONS,
  type Operation,
  OUTCOMES,
  type Outcome,
  PAYLOAD_OPERATIONS,
  type PayloadOperation,
  type StoreMetrics,
} from "./metrics.js";
import { reportSwallowed, safely } from "./safely.js";
import type { HistogramSeries } from "./series-histogram.js";
import type { ExemplarLabels } from "./tracing.js";

/** The counters and gauges a store moves by one, per backend. */
export type BackendCount =
  | "lockContention"
  | "lockRetries"
  | "lockLost"
  | "locksHeld"
  | "lockWaiters";

type Increment = (delta: number) => void;

/** Stands in for a series the registry refused to create: nothing is recorded there. */
const NOWHERE: HistogramSeries = { observe: () => {}, observeWithExemplar: () => {} };
const NO_INCREMENT: Increment = () => {};

/**
 * The metrics of one store, every series bound to its backend label when the store is
 * instrumented, so recording an operation builds no label object. Every method swallows its own
 * failures (reported once through `diag`): a registry that throws never reaches the caller.
 */
export class Recorder {
  private readonly durations = {} as Record<Operation, Partial<Record<Outcome, HistogramSeries>>>;
  private readonly payload = {} as Record<PayloadOperation, HistogramSeries>;
  private readonly lockAcquire = {} as Record<LockOutcome, HistogramSeries>;
  private readonly lockHold: HistogramSeries;
  private readonly counts = {} as Record<BackendCount, Increment>;
  /** Error counters by `operation:code`; codes beyond the expected ones are bound on first use. */
  private readonly errors = new Map<string, Increment>();

  constructor(
    private readonly metrics: StoreMetrics,
    private readonly backend: Backend,
  ) {
    const m = metrics;
    for (const operation of OPERATIONS) {
      this.durations[operation] = {};
      for (const outcome of OUTCOMES[operation]) {
        this.durations[operation][outcome] = bind(m.operationDuration, {
          operation,
          backend,
          outcome,
        });
      }
      for (const code of EXPECTED_ERROR_CODES[operation]) this.errorCounter(operation, code);
    }
    for (const operation of PAYLOAD_OPERATIONS) {
      this.payload[operation] = bind(m.payloadSize, { operation, backend });
    }
    for (const outcome of LOCK_OUTCOMES) {
      this.lockAcquire[outcome] = bind(m.lockAcquireDuration, { backend, outcome });
    }
    this.lockHold = bind(m.lockHoldDuration, { backend });
    for (const name of [
      "lockContention",
      "lockRetries",
      "lockLost",
      "locksHeld",
      "lockWaiters",
    ] as const) {
      this.counts[name] = increment(m[name], { backend });
    }
  }

  /** One finished operation: its duration by outcome, and its error code when it failed. */
  operation(
    operation: Operation,
    outcome: Outcome,
    seconds: number,
    error: unknown,
    exemplar: ExemplarLabels | undefined,
  ): void {
    try {
      const series = this.durations[operation][outcome];
      if (exemplar === undefined) series?.observe(seconds);
      else series?.observeWithExemplar(seconds, exemplar);
    } catch (failure) {
      reportSwallowed("operation duration", failure);
    }
    if (outcome === "error") {
      try {
        this.errorCounter(operation, errorCodeOf(error))(1);
      } catch (failure) {
        reportSwallowed("operation errors", failure);
      }
    }
  }

  payloadSize(operation: PayloadOperation, bytes: number): void {
    try {
      this.payload[operation]?.observe(bytes);
    } catch (error) {
      reportSwallowed("payload size", error);
    }
  }

  lockAcquired(outcome: LockOutcome, seconds: number, exemplar: ExemplarLabels | undefined): void {
    try {
      const series = this.lockAcquire[outcome];
      if (exemplar === undefined) series.observe(seconds);
      else series.observeWithExemplar(seconds, exemplar);
    } catch (error) {
      reportSwallowed("lock acquire duration", error);
    }
  }

  lockHeld(seconds: number): void {
    try {
      this.lockHold.observe(seconds);
    } catch (error) {
      reportSwallowed("lock hold duration", error);
    }
  }

  count(metric: BackendCount, delta: number): void {
    try {
      this.counts[metric](delta);
    } catch (error) {
      reportSwallowed(`${metric} count`, error);
    }
  }

  redlockNodeError(node: string): void {
    try {
      this.metrics.redlockNodeErrors.inc({ node: String(node) });
    } catch (error) {
      reportSwallowed("redlock node errors", error);
    }
  }

  /** The bound error counter of `operation` and `code`, its series created at zero. */
  private errorCounter(operation: Operation, code: string): Increment {
    const key = `${operation}:${code}`;
    let inc = this.errors.get(key);
    if (inc === undefined) {
      inc = increment(this.metrics.operationErrors, { operation, backend: this.backend, code });
      this.errors.set(key, inc);
    }
    return inc;
  }
}

function bind<T extends string>(
  histogram: Parameters<typeof histogramSeries<T>>[0],
  labels: Readonly<Record<T, string>>,
): HistogramSeries {
  return safely("bind histogram series", () => histogramSeries(histogram, labels), NOWHERE);
}

/** A bound `inc` of one counter or gauge series, created at zero (`inc(0)` keeps any count). */
function increment<T extends string>(
  metric: Counter<T> | Gauge<T>,
  labels: Readonly<Record<T, string>>,
): Increment {
  return safely(
    "bind counter series",
    () => {
      const child = metric.labels({ ...labels });
      child.inc(0);
      return (delta: number) => child.inc(delta);
    },
    NO_INCREMENT,
  );
}
