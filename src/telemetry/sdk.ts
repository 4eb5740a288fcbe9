/**
 * OpenTelemetry bootstrap, published as `mcp-session-store/otel` so that the root import never
 * loads `@opentelemetry/sdk-node`.
 */
import { createRequire } from "node:module";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { safely } from "./safely.js";
import { redactRedisStatement } from "./tracing.js";

export { redactRedisStatement };

type NodeSDKConfiguration = NonNullable<ConstructorParameters<typeof NodeSDK>[0]>;

/** Options of `startTelemetry`: every `NodeSDK` option, plus `serviceName`. */
export interface TelemetryOptions extends NodeSDKConfiguration {
  /** `service.name` of the resource. @default process.env.OTEL_SERVICE_NAME ?? "mcp-session-store" */
  serviceName?: string;
}

/** A running SDK. */
export interface Telemetry {
  /** Flushes pending spans and stops the SDK. Idempotent. */
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry Node SDK, configured from the standard `OTEL_*` variables
 * (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_EXPORTER`, `OTEL_TRACES_SAMPLER`,
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED`, ...), with the ioredis instrumentation so
 * Redis commands appear as CLIENT spans under the store's spans (their `db.query.text` reduced to
 * the command name, see `redactRedisStatement`). Metrics stay with prom-client:
 * unless `OTEL_METRICS_EXPORTER` / `OTEL_LOGS_EXPORTER` (or the matching options) say otherwise,
 * no OTLP metric or log exporter is started.
 *
 * Call it before the first store is created, ideally from a module loaded with `node --import`.
 *
 * @example
 * import { startTelemetry } from "mcp-session-store/otel";
 * const telemetry = await startTelemetry({ serviceName: "mcp-server" });
 * process.on("SIGTERM", () => void telemetry.shutdown());
 */
export async function startTelemetry(options: TelemetryOptions = {}): Promise<Telemetry> {
  const { serviceName, instrumentations, ...rest } = options;
  const config: NodeSDKConfiguration = {
    ...rest,
    serviceName: serviceName ?? (process.env.OTEL_SERVICE_NAME ? undefined : "mcp-session-store"),
    instrumentations: [
      // Statements keep only command names: keys hold session ids, arguments hold session data.
      new IORedisInstrumentation({ dbStatementSerializer: redactRedisStatement }),
      ...(instrumentations ?? []),
    ],
  };
  if (
    config.metricReaders === undefined &&
    config.metricReader === undefined &&
    !process.env.OTEL_METRICS_EXPORTER
  ) {
    config.metricReaders = [];
  }
  if (
    config.logRecordProcessors === undefined &&
    config.logRecordProcessor === undefined &&
    !process.env.OTEL_LOGS_EXPORTER
  ) {
    config.logRecordProcessors = [];
  }
  const sdk = new NodeSDK(config);
  sdk.start();
  // The instrumentation patches ioredis when it is required. An ESM import of ioredis (or one
  // that happened before this call) bypasses that hook; requiring it now patches the loaded
  // module in place, so the clients of this library get traced whatever the load order.
  // Throws only when ioredis is missing: then there is nothing to trace.
  safely(
    "load ioredis for its instrumentation",
    () => createRequire(import.meta.url)("ioredis"),
    undefined,
  );
  let stopping: Promise<void> | undefined;
  return {
    shutdown: () => {
      stopping ??= sdk.shutdown();
      return stopping;
    },
  };
}
