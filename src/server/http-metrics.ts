/**
 * `mcp_http_requests_total{route,status}`: the reference server's HTTP answers, so refusals
 * (404 unknown session, 413 too large, 429 rate limited, 503 draining or store down) show on
 * /metrics and the dashboard.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Counter, type Registry, type RegistryContentType } from "prom-client";

/** The routes counted; anything else is `other`, so a scanner cannot mint label values. */
const ROUTES = new Set(["/mcp", "/metrics", "/healthz", "/readyz"]);

export const HTTP_REQUESTS_METRIC = "mcp_http_requests_total";

/** Returns `count(req, res)`, which counts the response once it is finished or cut. */
export function httpRequestCounter(
  registry: Registry<RegistryContentType>,
): (req: IncomingMessage, res: ServerResponse, path: string) => void {
  const existing = registry.getSingleMetric(HTTP_REQUESTS_METRIC) as Counter<string> | undefined;
  const counter =
    existing ??
    new Counter({
      name: HTTP_REQUESTS_METRIC,
      help: "HTTP requests answered by the reference server, by route and status (0: the connection closed before a status was sent).",
      labelNames: ["route", "method", "status"] as const,
      registers: [registry as Registry],
    });
  return (req, res, path) => {
    const route = ROUTES.has(path) ? path : "other";
    const method = ["GET", "POST", "DELETE", "OPTIONS", "HEAD"].includes(req.method ?? "")
      ? (req.method as string)
      : "other";
    res.once("close", () => {
      try {
        counter.inc({ route, method, status: res.headersSent ? String(res.statusCode) : "0" });
      } catch {
        // telemetry never fails a request
      }
    });
  };
}
