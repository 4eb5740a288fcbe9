import type { IncomingMessage, ServerResponse } from "node:http";
import Negotiator from "negotiator";
import { type OpenMetricsContentType, Registry, type RegistryContentType } from "prom-client";
import { withTimeout } from "../timeout.js";
import { reportSwallowed, safely } from "./safely.js";

/** A prom-client registry of either content type. */
type AnyRegistry = Registry<RegistryContentType>;

/** Content type of the OpenMetrics exposition (the only format that carries exemplars). */
export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

/** Options of `metricsHandler`. */
export interface MetricsHandlerOptions {
  /**
   * Serve OpenMetrics, with exemplars (trace ids on latency buckets), to scrapers whose `Accept`
   * header prefers `application/openmetrics-text`. `false` always serves the registry's own format.
   * @default true
   */
  openMetrics?: boolean;
  /**
   * Longest a collection may take, ms (a collect callback waiting on an unreachable backend):
   * beyond it the scrape gets 500 instead of hanging past the scraper's own timeout.
   * @default 10000 (Prometheus' default `scrape_timeout`)
   */
  collectTimeoutMs?: number;
}

/** What the metrics handler serves. */
const AVAILABLE = ["application/openmetrics-text;version=1.0.0", "text/plain"] as const;

/**
 * Whether an `Accept` header prefers OpenMetrics 1.0.0 over the Prometheus text format
 * (Prometheus sends `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5`).
 * Negotiated by `negotiator` (quality, then specificity, then the client's order; before it,
 * equal qualities went to OpenMetrics): an `application/openmetrics-text` with another
 * `version` does not match.
 */
export function prefersOpenMetrics(accept: string | undefined): boolean {
  // Only a scraper that names OpenMetrics gets it (`*/*` alone keeps the registry's format).
  if (accept === undefined || !/application\/openmetrics-text/i.test(accept)) return false;
  return new Negotiator({ headers: { accept } }).mediaType(AVAILABLE) === AVAILABLE[0];
}

/**
 * Renders a Prometheus-format registry as OpenMetrics without touching it. prom-client writes
 * exemplars only when the registry's content type is OpenMetrics, and its OpenMetrics rendering
 * renames counters in place (strips `_total`), which would corrupt later Prometheus scrapes. So
 * the samples are read with `getMetricsAsJSON()` (which applies the registry's default labels)
 * and rendered through a throwaway OpenMetrics registry of thin facades: the facade gets
 * renamed, the metric does not, and both formats keep working on one registry.
 */
export async function renderOpenMetrics(registry: AnyRegistry): Promise<string> {
  if (registry.contentType === OPENMETRICS_CONTENT_TYPE) return registry.metrics();
  const view = new Registry<OpenMetricsContentType>();
  view.setContentType(OPENMETRICS_CONTENT_TYPE);
  for (const data of await registry.getMetricsAsJSON()) {
    const facade = {
      name: data.name,
      type: data.type,
      help: data.help,
      get(this: { name: string }) {
        return { ...data, name: this.name };
      },
    };
    // A facade is not one of prom-client's classes; the registry needs only name, type and get().
    view.registerMetric(facade as never);
  }
  return view.metrics();
}

/**
 * A `(req, res)` handler for `node:http` or Express that serves the registry: the Prometheus
 * text format (`registry.contentType`) by default, OpenMetrics with exemplars when the `Accept`
 * header prefers it. Never throws: a failed collection answers 500.
 *
 * @example
 * import http from "node:http";
 * const store = await createSessionStore();
 * const metrics = metricsHandler(store.registry);
 * http.createServer((req, res) => (req.url === "/metrics" ? metrics(req, res) : res.end())).listen(9464);
 */
export function metricsHandler(
  registry: AnyRegistry,
  options: MetricsHandlerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const negotiate = options.openMetrics ?? true;
  const collectTimeoutMs = options.collectTimeoutMs ?? 10_000;
  return (req, res) => {
    const openMetrics = safely(
      "Accept negotiation",
      () => negotiate && prefersOpenMetrics(req.headers.accept),
      false,
    );
    const rendering = withTimeout(
      (async () =>
        openMetrics
          ? { body: await renderOpenMetrics(registry), type: OPENMETRICS_CONTENT_TYPE }
          : { body: await registry.metrics(), type: registry.contentType })(),
      collectTimeoutMs,
      "metrics collection",
    );
    rendering.then(
      ({ body, type }) => {
        // Throws only when the client went away.
        safely(
          "metrics response",
          () => {
            res.statusCode = 200;
            res.setHeader("Content-Type", type);
            res.setHeader("Cache-Control", "no-store");
            res.end(req.method === "HEAD" ? undefined : body);
          },
          undefined,
        );
      },
      (error: unknown) => {
        reportSwallowed("metrics collection", error);
        safely(
          "metrics response",
          () => {
            res.statusCode = 500;
            res.setHeader("Content-Type", "text/plain; charset=utf-8");
            res.end("metrics collection failed\n");
          },
          undefined,
        );
      },
    );
  };
}
