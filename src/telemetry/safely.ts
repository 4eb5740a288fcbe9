import { diag } from "@opentelemetry/api";

/** Sites already reported: a broken registry or tracer fails on every call, one line is enough. */
const reported = new Set<string>();

/**
 * Reports a telemetry failure that was swallowed so the caller's result stays untouched, once
 * per `site`, through OpenTelemetry's `diag` logger (silent unless the application sets one with
 * `diag.setLogger`). Never throws.
 *
 * @example
 * try {
 *   series.observe(seconds);
 * } catch (error) {
 *   reportSwallowed("operation duration", error);
 * }
 */
export function reportSwallowed(site: string, error: unknown): void {
  if (reported.has(site)) return;
  reported.add(site);
  try {
    diag.warn(`mcp-session-store: telemetry failed at "${site}" (reported once)`, error);
  } catch {
    // The logger itself failed; there is nowhere left to report to.
  }
}

/**
 * Runs `fn` and returns its result; if it throws, reports the error through `reportSwallowed`
 * and returns `fallback` instead (as OpenTelemetry's `safeExecuteInTheMiddle` does for
 * instrumentations). Telemetry never throws into the caller.
 *
 * @example
 * const child = safely("bind error counter", () => counter.labels(labels), undefined);
 */
export function safely<R, F>(site: string, fn: () => R, fallback: F): R | F {
  try {
    return fn();
  } catch (error) {
    reportSwallowed(site, error);
    return fallback;
  }
}
