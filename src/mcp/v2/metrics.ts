import { type Counter, Histogram, type Registry } from "prom-client";
import { getOrCreateMetric } from "../../telemetry/get-or-create-metric.js";
import { counter } from "../support.js";

/**
 * The metrics of the event bus and the handles, registered once per registry (request states and
 * tasks count their own: `mcp_session_store_request_state_consumed_total{outcome}`,
 * `mcp_session_store_task_transitions_total{status}`). No label ever holds an id.
 */
export interface V2Metrics {
  /** Events this process published, by `kind`. */
  busPublished: Counter<"kind">;
  /** Events handed to a listener of this process, by `kind` (one per listener). */
  busDelivered: Counter<"kind">;
  /** Events not delivered, by `reason`: malformed, duplicate, publish_failed, listener_error. */
  busDropped: Counter<"reason">;
  /** Events another process published that never arrived here (sequence gaps). */
  busLost: Counter<string>;
  /** Publish-to-delivery time across processes. */
  busDeliverySeconds: Histogram<string>;
  /** Handle operations by `operation` and `outcome` (ok, not_found, expired, error). */
  handleOperations: Counter<"operation" | "outcome">;
}

const cache = new WeakMap<Registry, V2Metrics>();

/** The bus and handle metrics on `registry`, created on first use (shared by all services). */
export function v2Metrics(registry: Registry): V2Metrics {
  const cached = cache.get(registry);
  if (cached !== undefined) return cached;
  const p = "mcp_session_store_";
  const metrics: V2Metrics = {
    busPublished: counter(
      registry,
      `${p}bus_published_total`,
      "Events published by this process.",
      ["kind"] as const,
    ),
    busDelivered: counter(
      registry,
      `${p}bus_delivered_total`,
      "Events handed to a listener of this process (one per listener).",
      ["kind"] as const,
    ),
    busDropped: counter(
      registry,
      `${p}bus_dropped_total`,
      "Events not delivered: malformed channel messages, duplicates, failed publishes, throwing listeners.",
      ["reason"] as const,
    ),
    busLost: counter(
      registry,
      `${p}bus_lost_total`,
      "Events another process published that never reached this one (gaps in its sequence, e.g. a Redis outage).",
    ),
    busDeliverySeconds: getOrCreateMetric(
      registry,
      { name: `${p}bus_delivery_seconds`, type: "histogram" },
      () =>
        new Histogram({
          name: `${p}bus_delivery_seconds`,
          help: "Time from publish in one process to delivery in another.",
          buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
          registers: [registry],
        }),
    ),
    handleOperations: counter(
      registry,
      `${p}handle_operations_total`,
      "Handle operations by operation and outcome.",
      ["operation", "outcome"] as const,
    ),
  };
  cache.set(registry, metrics);
  return metrics;
}
