import type { IncomingMessage, ServerResponse } from "node:http";
import { type OpenMetricsContentType, Registry, type RegistryContentType } from "prom-client";

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

type MetricLike = { name: string; type?: string; help?: string };
type Rendered = { name: string; [key: string]: unknown };

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
 * the metrics are rendered through a throwaway OpenMetrics registry of thin facades: the facade
 * gets renamed, the metric does not, and both formats keep working on one registry.
 */
export async function renderOpenMetrics(registry: AnyRegistry): Promise<string> {
  if (registry.contentType === OPENMETRICS_CONTENT_TYPE) return registry.metrics();
  const view = new Registry<OpenMetricsContentType>();
  view.setContentType(OPENMETRICS_CONTENT_TYPE);
  const defaultLabels = (registry as unknown as { _defaultLabels?: Record<string, string> })
    ._defaultLabels;
  if (defaultLabels !== undefined && Object.keys(defaultLabels).length > 0) {
    view.setDefaultLabels(defaultLabels);
  }
  for (const metric of registry.getMetricsAsArray() as unknown as MetricLike[]) {
    const source = metric as MetricLike & {
      get(): Promise<Rendered>;
      getForPromString?(): Promise<Rendered>;
    };
    const facade = {
      name: source.name,
      type: source.type,
      help: source.help,
      async getForPromString(this: { name: string }): Promise<Rendered> {
        const data =
          typeof source.getForPromString === "function"
            ? await source.getForPromString()
            : await source.get();
        return { ...data, name: this.name };
      },
    };
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
    let openMetrics = false;
    try {
      openMetrics = negotiate && prefersOpenMetrics(req.headers.accept);
    } catch {
      openMetrics = false;
    }
    const rendering = (async () =>
      openMetrics
        ? { body: await renderOpenMetrics(registry), type: OPENMETRICS_CONTENT_TYPE }
        : { body: await registry.metrics(), type: registry.contentType })();
    rendering.then(
      ({ body, type }) => {
        try {
          res.statusCode = 200;
          res.setHeader("Content-Type", type);
          res.setHeader("Cache-Control", "no-store");
          res.end(req.method === "HEAD" ? undefined : body);
        } catch {
          // the client went away
        }
      },
      () => {
        try {
          res.statusCode = 500;
          res.setHeader("Content-Type", "text/plain; charset=utf-8");
          res.end("metrics collection failed\n");
        } catch {
          // as above
        }
      },
    );
  };
}
