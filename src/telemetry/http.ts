import type { IncomingMessage, ServerResponse } from "node:http";
import { type OpenMetricsContentType, Registry, type RegistryContentType } from "prom-client";
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
}

/**
 * Whether an `Accept` header prefers OpenMetrics 1.0.0 over the Prometheus text format
 * (Prometheus sends `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5`).
 */
export function prefersOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined || accept.length === 0) return false;
  let openMetrics = 0;
  let text = 0;
  for (const entry of accept.split(",")) {
    const [type = "", ...params] = entry.split(";").map((part) => part.trim().toLowerCase());
    let q = 1;
    let version: string | undefined;
    for (const param of params) {
      const [key, value = ""] = param.split("=").map((part) => part.trim());
      if (key === "q") q = Number(value);
      else if (key === "version") version = value;
    }
    if (!Number.isFinite(q)) continue;
    if (type === "application/openmetrics-text") {
      if (version === undefined || version === "1.0.0") openMetrics = Math.max(openMetrics, q);
    } else if (type === "text/plain" || type === "*/*" || type === "text/*") {
      text = Math.max(text, q);
    }
  }
  return openMetrics > 0 && openMetrics >= text;
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
  return (req, res) => {
    const openMetrics = safely(
      "Accept negotiation",
      () => negotiate && prefersOpenMetrics(req.headers.accept),
      false,
    );
    const rendering = (async () =>
      openMetrics
        ? { body: await renderOpenMetrics(registry), type: OPENMETRICS_CONTENT_TYPE }
        : { body: await registry.metrics(), type: registry.contentType })();
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
