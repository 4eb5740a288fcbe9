import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SpanKind } from "@opentelemetry/api";
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore } from "../src/factory.js";
import { startTelemetry } from "../src/telemetry/sdk.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Whether importing `entry` (in a fresh process) loads @opentelemetry/sdk-node. */
function loadsSdk(entry: string): Promise<boolean> {
  const script = `
    import { createRequire } from "node:module";
    await import(${JSON.stringify(path.join(root, entry))});
    const require = createRequire(import.meta.url);
    const loaded = Object.keys(require.cache).some((file) => file.includes("@opentelemetry/sdk-node"));
    process.stdout.write(String(loaded));
  `;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      { cwd: root, timeout: 30_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${error.message}\n${stderr}`));
        else resolve(stdout.trim() === "true");
      },
    );
  });
}

describe("startTelemetry", () => {
  let redis: RedisNode;
  beforeAll(async () => {
    redis = await startRedis();
  }, 60_000);
  afterAll(async () => {
    await redis?.stop();
  });

  it("traces the store and its Redis commands, without ids in statements, and flushes on shutdown", async () => {
    // A batch processor exports on its timer (5 s) or on flush: spans seen right after
    // shutdown() prove that it flushes.
    const exported: ReadableSpan[] = [];
    const exporter: SpanExporter = {
      export: (spans, done) => {
        exported.push(...spans);
        done({ code: 0 });
      },
      shutdown: async () => {},
    };
    const telemetry = await startTelemetry({
      serviceName: "telemetry-test",
      spanProcessors: [new BatchSpanProcessor(exporter)],
    });
    try {
      const store = await createRedisSessionStore({
        redisUrl: redis.url,
        instrumentation: { registry: new Registry() },
      });
      await store.setSession("sdk-secret-id", { n: 1 });
      expect(await store.getSession("sdk-secret-id")).toEqual({ n: 1 });
      await store.disconnect();
      expect(exported).toHaveLength(0);
    } finally {
      await telemetry.shutdown();
      await telemetry.shutdown();
    }
    const spans = exported;
    const get = spans.find((span) => span.name === "session_store.get");
    expect(get).toBeDefined();
    expect(get?.resource.attributes["service.name"]).toBe("telemetry-test");
    const clients = spans.filter(
      (span) =>
        span.kind === SpanKind.CLIENT &&
        span.parentSpanContext?.spanId === get?.spanContext().spanId,
    );
    expect(clients.length).toBeGreaterThanOrEqual(1);
    const everything = JSON.stringify(
      spans.map((span) => [span.name, span.attributes, span.events]),
    );
    expect(everything).not.toContain("sdk-secret-id");
  });

  it("is the only entry point that loads the OpenTelemetry SDK", async () => {
    expect(await loadsSdk("src/index.ts")).toBe(false);
    expect(await loadsSdk("src/telemetry/sdk.ts")).toBe(true);
  }, 60_000);
});
