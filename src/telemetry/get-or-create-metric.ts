import type { Registry } from "prom-client";
import { ErrorCode, SessionStoreError } from "../errors.js";

/** The kinds of metric `getOrCreateMetric` checks for. */
export type MetricKind = "counter" | "gauge" | "histogram";

/** What an existing metric must be for `getOrCreateMetric` to share it. */
export interface MetricShape {
  name: string;
  type: MetricKind;
  /** @default [] */
  labelNames?: readonly string[];
}

/** The configuration every prom-client metric (and `SeriesHistogram`) keeps on itself. */
interface Described {
  type?: unknown;
  labelNames?: unknown;
}

/**
 * The metric `shape.name` of `registry`: the one already there when another store, another
 * service or the application registered it with the same type and label names, else the one
 * `create()` builds and registers. Several stores and services share one registry this way.
 * Throws `ERR_INVALID_ARGUMENT` when the registry holds that name with another type or labels.
 *
 * @example
 * const requests = getOrCreateMetric(
 *   registry,
 *   { name: "mcp_requests_total", type: "counter", labelNames: ["method"] },
 *   () => new Counter({ name: "mcp_requests_total", help: "...", labelNames: ["method"], registers: [registry] }),
 * );
 */
export function getOrCreateMetric<M>(registry: Registry, shape: MetricShape, create: () => M): M {
  const existing = registry.getSingleMetric(shape.name) as Described | undefined;
  if (existing === undefined) return create();
  const expected = shape.labelNames ?? [];
  const actual = Array.isArray(existing.labelNames) ? (existing.labelNames as unknown[]) : [];
  if (
    existing.type !== shape.type ||
    actual.length !== expected.length ||
    expected.some((label) => !actual.includes(label))
  ) {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      `Invalid option "registry": the registry already holds a metric "${shape.name}" of another ` +
        `type or with other labels (expected a ${shape.type} with labels ${expected.join(", ")})`,
      { details: { option: "registry" } },
    );
  }
  return existing as M;
}
