import { context, type Span } from "@opentelemetry/api";
import { ErrorCode, SessionStoreError } from "../errors.js";
import type { Operation, Outcome } from "./metrics.js";
import type { Recorder } from "./recorder.js";
import { reportSwallowed } from "./safely.js";
import type { StoreTracing } from "./tracing.js";

/** What a `health()` answer of `ok: false` counts as. */
const BACKEND_DOWN = new SessionStoreError(
  ErrorCode.BACKEND_UNAVAILABLE,
  "The health check reported the backend unavailable",
);

/**
 * Runs store calls inside their span and records their duration and outcome: the part every
 * instrumented method, the lock wrapper and the iterator wrapper share.
 */
export class TracedOperations {
  constructor(
    readonly recorder: Recorder,
    readonly tracing: StoreTracing,
  ) {}

  /**
   * Runs one store call inside its span and records it. `call` is invoked exactly once; its
   * result or error (sync or async) reaches the caller untouched. `outcomeOf` and `onSuccess`
   * are telemetry: if they throw, the call still resolves with its value.
   */
  run<R>(
    operation: Operation,
    id: string | undefined,
    call: () => Promise<R>,
    outcomeOf: (value: R) => Outcome,
    onSuccess?: (value: R) => void,
  ): Promise<R> {
    // No named closure per call: the hot path allocates as little as it can.
    const span = this.tracing.start(operation, id);
    const start = performance.now();
    let promise: Promise<R>;
    try {
      promise = span === undefined ? call() : this.within(span, call);
    } catch (error) {
      this.failed(operation, id, span, start, error);
      throw error;
    }
    return promise.then(
      (value) => {
        this.succeeded(operation, id, span, start, value, outcomeOf, onSuccess);
        return value;
      },
      (error: unknown) => {
        this.failed(operation, id, span, start, error);
        throw error;
      },
    );
  }

  /**
   * Calls `call` inside the span's context, so the backend's client spans become its children;
   * falls back to a plain call if the context API fails before calling it.
   */
  within<R>(span: Span, call: () => R): R {
    const ctx = this.tracing.contextOf(span);
    if (ctx === undefined) return call();
    let called = false;
    try {
      return context.with(ctx, () => {
        called = true;
        return call();
      });
    } catch (error) {
      if (called) throw error;
      reportSwallowed("context.with", error);
      return call();
    }
  }

  /** Records an operation that ended with `error` (thrown or rejected). */
  failed(
    operation: Operation,
    id: string | undefined,
    span: Span | undefined,
    start: number,
    error: unknown,
  ): void {
    const seconds = (performance.now() - start) / 1000;
    this.recorder.operation(operation, "error", seconds, error, this.tracing.exemplarOf(span));
    if (span !== undefined) this.tracing.end(span, "error", error, id);
  }

  private succeeded<R>(
    operation: Operation,
    id: string | undefined,
    span: Span | undefined,
    start: number,
    value: R,
    outcomeOf: (value: R) => Outcome,
    onSuccess: ((value: R) => void) | undefined,
  ): void {
    const seconds = (performance.now() - start) / 1000;
    let outcome: Outcome = "ok";
    try {
      outcome = outcomeOf(value);
      onSuccess?.(value);
    } catch (error) {
      reportSwallowed("outcome of a result", error);
    }
    // A resolved call is an error only for health() reporting `ok: false`.
    const error = outcome === "error" ? BACKEND_DOWN : undefined;
    this.recorder.operation(operation, outcome, seconds, error, this.tracing.exemplarOf(span));
    if (span !== undefined) this.tracing.end(span, outcome, error, id);
  }
}
