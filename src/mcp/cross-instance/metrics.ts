import { type Counter, Histogram, type Registry } from "prom-client";
import { getOrCreateMetric } from "../../telemetry/get-or-create-metric.js";
import { counter } from "../support.js";

/** Why an answer from the client reached no pending request. */
export type DropReason =
  /** No instance waits for that id in that session (never sent, already answered, expired). */
  | "unknown"
  /** The instance that sent the request is gone (nobody listens on its channel). */
  | "owner_gone"
  /** The sending instance got it, but the request had finished (timed out, cancelled, closed). */
  | "not_pending"
  /** Not a JSON-RPC response this mechanism can carry (id type or size, bad channel message). */
  | "malformed"
  /** Redis did not answer while routing it. */
  | "backend_error";

/** The metrics of the cross-instance mechanism. No label ever holds an id. */
export interface CrossInstanceMetrics {
  /** Answers received here for a request another instance sent, and published to it. */
  answersRouted: Counter<string>;
  /** Answers delivered to a pending request, by `path` (local: the POST came here; remote). */
  answersDelivered: Counter<"path">;
  answersDropped: Counter<"reason">;
  /** Publish-to-delivery time across instances, by `kind` (answer, push). */
  deliverySeconds: Histogram<"kind">;
  /** Messages written to a stream (standalone or resumed) after a push from the event store. */
  messagesPushed: Counter<"stream">;
}

const P = "mcp_session_store_mcp_";
const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

const cache = new WeakMap<Registry, CrossInstanceMetrics>();

/** The cross-instance metrics on `registry`, created on first use. */
export function crossInstanceMetrics(registry: Registry): CrossInstanceMetrics {
  const cached = cache.get(registry);
  if (cached !== undefined) return cached;
  const name = `${P}cross_instance_delivery_seconds`;
  const metrics: CrossInstanceMetrics = {
    answersRouted: counter(
      registry,
      `${P}answers_routed_total`,
      "Client answers received on this instance for a request another instance sent, published to it.",
    ),
    answersDelivered: counter(
      registry,
      `${P}answers_delivered_total`,
      "Client answers that resolved a pending server-to-client request of this instance, by path (local, remote).",
      ["path"] as const,
    ),
    answersDropped: counter(
      registry,
      `${P}answers_dropped_total`,
      "Client answers that reached no pending request, by reason (unknown, owner_gone, not_pending, malformed, backend_error).",
      ["reason"] as const,
    ),
    deliverySeconds: getOrCreateMetric(
      registry,
      { name, type: "histogram", labelNames: ["kind"] },
      () =>
        new Histogram<"kind">({
          name,
          help: "Time from publishing on one instance to handling on another, by kind (answer, push).",
          labelNames: ["kind"],
          buckets: BUCKETS,
          registers: [registry],
        }),
    ),
    messagesPushed: counter(
      registry,
      `${P}stream_messages_pushed_total`,
      "Messages written to a client's stream from the event store after a push, by stream (standalone, request).",
      ["stream"] as const,
    ),
  };
  cache.set(registry, metrics);
  return metrics;
}
