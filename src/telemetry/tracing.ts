import {
  type Attributes,
  type Context,
  context,
  ProxyTracerProvider,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { hashId } from "../codec.js";
import { errorCodeOf } from "../errors.js";
import type { Backend } from "../types.js";
import { OPERATIONS, type Operation, type Outcome } from "./metrics.js";
import { reportSwallowed, safely } from "./safely.js";

/** What the global provider delegates to while no SDK is registered. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/** True while the global tracer provider is the API's no-op (no SDK registered). */
function noGlobalSdk(): boolean {
  const provider = trace.getTracerProvider();
  return provider instanceof ProxyTracerProvider && provider.getDelegate() === NOOP_PROVIDER;
}

/** Name of the default tracer (`trace.getTracer(TRACER_NAME)`). */
export const TRACER_NAME = "mcp-session-store";

/** Span attribute keys. */
export const ATTR = Object.freeze({
  operation: "session_store.operation",
  backend: "session_store.backend",
  outcome: "session_store.outcome",
  sessionIdHash: "session_store.session_id_hash",
  errorType: "error.type",
  lockAttempt: "session_store.lock.attempt",
  lockReason: "session_store.lock.reason",
});

/** Name of the span event added for each retried lock attempt. */
export const LOCK_RETRY_EVENT = "session_store.lock_retry";

/**
 * A `dbStatementSerializer` for `@opentelemetry/instrumentation-ioredis` that keeps the command
 * name and the argument count only. The instrumentation's default quotes the arguments of many
 * commands (EVALSHA, EXISTS, DEL, PEXPIRE, ...), and our keys contain the session id and our
 * arguments the session data. `startTelemetry()` installs it; pass it yourself when you build
 * the SDK by hand.
 *
 * @example
 * new IORedisInstrumentation({ dbStatementSerializer: redactRedisStatement })
 */
export function redactRedisStatement(command: string, args: readonly unknown[]): string {
  return args.length === 0 ? command : `${command} [${args.length} arguments]`;
}

/** Exemplar labels of a sampled span (OpenMetrics: at most 128 characters; these use 63). */
export type ExemplarLabels = {
  trace_id: string;
  span_id: string;
};

/**
 * Spans of one instrumented store. Every method swallows its own failures (reported once
 * through `diag`): a broken tracer or exporter never reaches the caller. When nothing records
 * (no SDK, or the sampler dropped the span), `start` returns `undefined` and no attribute is
 * computed.
 */
export class StoreTracing {
  private readonly tracer: Tracer;
  /** The default (global) tracer: skipped outright while no SDK is registered. */
  private readonly global: boolean;
  private readonly options: Record<
    Operation,
    { name: string; options: { kind: SpanKind; attributes: Attributes } }
  >;
  /** Lock acquisition spans, so a retry event never lands on somebody else's span. */
  private readonly acquireSpans = new WeakSet<Span>();

  constructor(tracer: Tracer | undefined, backend: Backend) {
    // The global tracer is a proxy: it follows a provider registered after this call.
    this.tracer = tracer ?? trace.getTracer(TRACER_NAME);
    this.global = tracer === undefined;
    const options = {} as Record<
      Operation,
      { name: string; options: { kind: SpanKind; attributes: Attributes } }
    >;
    for (const operation of OPERATIONS) {
      options[operation] = {
        name: `session_store.${operation}`,
        options: {
          kind: SpanKind.INTERNAL,
          attributes: Object.freeze({ [ATTR.operation]: operation, [ATTR.backend]: backend }),
        },
      };
    }
    this.options = options;
  }

  /** Starts `session_store.<operation>`; `undefined` when the span would not be recorded. */
  start(operation: Operation, id: string | undefined): Span | undefined {
    try {
      if (this.global && noGlobalSdk()) return undefined;
      const { name, options } = this.options[operation];
      const span = this.tracer.startSpan(name, options);
      if (!span.isRecording()) return undefined;
      if (typeof id === "string") span.setAttribute(ATTR.sessionIdHash, hashId(id));
      if (operation === "lock_acquire") this.acquireSpans.add(span);
      return span;
    } catch (error) {
      reportSwallowed("start span", error);
      return undefined;
    }
  }

  /** The context in which the backend call runs, so its client spans become children. */
  contextOf(span: Span): Context | undefined {
    try {
      return trace.setSpan(context.active(), span);
    } catch (error) {
      reportSwallowed("span context", error);
      return undefined;
    }
  }

  /** Trace and span id of a sampled span, for exemplars; `undefined` otherwise. */
  exemplarOf(span: Span | undefined): ExemplarLabels | undefined {
    if (span === undefined) return undefined;
    try {
      const spanContext = span.spanContext();
      if ((spanContext.traceFlags & TraceFlags.SAMPLED) === 0) return undefined;
      return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
    } catch (error) {
      reportSwallowed("exemplar of a span", error);
      return undefined;
    }
  }

  /** Ends a span with its outcome; errors get status ERROR and an exception event without the raw id. */
  end(span: Span, outcome: Outcome, error: unknown, id: string | undefined): void {
    try {
      span.setAttribute(ATTR.outcome, outcome);
      if (outcome === "error") {
        const code = errorCodeOf(error);
        const message = scrub(describe(error), id);
        span.setAttribute(ATTR.errorType, code);
        span.recordException({
          name: error instanceof Error ? error.name : typeof error,
          message,
          ...(error instanceof Error && error.stack !== undefined
            ? { stack: scrub(error.stack, id) }
            : {}),
        });
        span.setStatus({ code: SpanStatusCode.ERROR, message });
      }
    } catch (failure) {
      reportSwallowed("span outcome", failure);
    }
    try {
      span.end();
    } catch (failure) {
      reportSwallowed("end span", failure);
    }
  }

  /** Adds a retry event to the lock acquisition span active in this async context, if any. */
  lockRetry(attempt: number, reason: string): void {
    try {
      const span = trace.getActiveSpan();
      if (span === undefined || !this.acquireSpans.has(span)) return;
      span.addEvent(LOCK_RETRY_EVENT, { [ATTR.lockAttempt]: attempt, [ATTR.lockReason]: reason });
    } catch (error) {
      reportSwallowed("lock retry event", error);
    }
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return safely("describe an error", () => String(error), "unprintable error");
}

/**
 * Library errors name a session only by hash already; anything else (an error thrown by an
 * `updateSession` callback, say) might quote the id, so it is replaced by its hash.
 */
function scrub(text: string, id: string | undefined): string {
  if (id === undefined || id.length === 0 || !text.includes(id)) return text;
  return text.split(id).join(`<session ${hashId(id)}>`);
}
