import { createRequire } from "node:module";
import { context, SpanKind, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashId } from "../src/codec.js";
import { ErrorCode } from "../src/errors.js";
import { createMemorySessionStore, createRedisSessionStore } from "../src/factory.js";
import { instrument } from "../src/telemetry/instrument.js";
import { METRIC_NAMES } from "../src/telemetry/metrics.js";
import { LOCK_RETRY_EVENT, redactRedisStatement } from "../src/telemetry/tracing.js";
import type { SessionStore } from "../src/types.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const SECRET_ID = "user-4242-secret-session";
const manager = new AsyncLocalStorageContextManager();
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const ioredisInstrumentation = new IORedisInstrumentation({
  dbStatementSerializer: redactRedisStatement,
});
let redis: RedisNode;
const open: SessionStore[] = [];
let prefixes = 0;

beforeAll(async () => {
  context.setGlobalContextManager(manager.enable());
  ioredisInstrumentation.setTracerProvider(provider);
  ioredisInstrumentation.enable();
  // ioredis came in through an ESM import, which the require hook does not see: requiring it
  // again patches the loaded module in place (what startTelemetry does too).
  createRequire(import.meta.url)("ioredis");
  redis = await startRedis();
}, 60_000);

beforeEach(() => exporter.reset());

afterEach(async () => {
  await Promise.all(open.splice(0).map((store) => store.disconnect().catch(() => {})));
});

afterAll(async () => {
  ioredisInstrumentation.disable();
  await provider.shutdown();
  context.disable();
  await redis?.stop();
});

const tracer = (): Tracer => provider.getTracer("test");

async function makeStore(
  backend: "memory" | "redis",
  options: { tracer?: Tracer; registry?: Registry } = {},
): Promise<SessionStore> {
  const instrumentation = {
    tracer: options.tracer ?? tracer(),
    registry: options.registry ?? new Registry(),
  };
  const store =
    backend === "memory"
      ? createMemorySessionStore({ instrumentation })
      : await createRedisSessionStore({
          redisUrl: redis.url,
          prefix: `tracing${++prefixes}:`,
          instrumentation,
        });
  open.push(store);
  return store;
}

const ours = (spans: ReadableSpan[]) =>
  spans.filter((span) => span.name.startsWith("session_store."));

function parentId(span: ReadableSpan): string | undefined {
  const legacy = span as unknown as { parentSpanId?: string };
  return span.parentSpanContext?.spanId ?? legacy.parentSpanId;
}

describe.each(["memory", "redis"] as const)("spans on the %s backend", (backend) => {
  it("names, kinds and attributes of every operation", async () => {
    const store = await makeStore(backend);
    await store.setSession(SECRET_ID, { a: 1 });
    await store.getSession(SECRET_ID);
    await store.getSession("absent");
    await store.updateSession(SECRET_ID, () => ({ a: 2 }));
    await store.hasSession(SECRET_ID);
    await store.touchSession(SECRET_ID);
    await store.getSessionTtl(SECRET_ID);
    for await (const _ of store.listSessions()) {
      // drain
    }
    await store.health();
    await store.withLock(SECRET_ID, async (lock) => lock.extend());
    await store.deleteSession(SECRET_ID);

    const spans = ours(exporter.getFinishedSpans());
    expect(spans.map((span) => span.name)).toEqual([
      "session_store.set",
      "session_store.get",
      "session_store.get",
      "session_store.update",
      "session_store.has",
      "session_store.touch",
      "session_store.ttl",
      "session_store.list",
      "session_store.health",
      "session_store.lock_acquire",
      "session_store.lock_extend",
      "session_store.lock_release",
      "session_store.delete",
    ]);
    for (const span of spans) {
      expect(span.kind).toBe(SpanKind.INTERNAL);
      expect(span.attributes["session_store.backend"]).toBe(backend);
      expect(span.attributes["session_store.operation"]).toBe(
        span.name.slice("session_store.".length),
      );
      expect(span.status.code).not.toBe(SpanStatusCode.ERROR);
      if (!["session_store.list", "session_store.health"].includes(span.name)) {
        expect(span.attributes["session_store.session_id_hash"]).toMatch(/^[0-9a-f]{12}$/);
      }
    }
    expect(spans.map((span) => span.attributes["session_store.outcome"])).toEqual([
      "ok",
      "hit",
      "miss",
      "ok",
      "hit",
      "hit",
      "hit",
      "ok",
      "ok",
      "ok",
      "ok",
      "ok",
      "hit",
    ]);
    expect(spans[0]?.attributes["session_store.session_id_hash"]).toBe(hashId(SECRET_ID));
    expect(JSON.stringify(exporter.getFinishedSpans().map(dump))).not.toContain(SECRET_ID);
  });

  it("records errors with status ERROR and never the raw id", async () => {
    const store = await makeStore(backend);
    await expect(store.setSession("bad id", 1)).rejects.toMatchObject({
      code: ErrorCode.INVALID_SESSION_ID,
    });
    const quoting = new Error(`cannot update ${SECRET_ID}: refused`);
    await expect(store.updateSession(SECRET_ID, () => Promise.reject(quoting))).rejects.toBe(
      quoting,
    );
    const spans = ours(exporter.getFinishedSpans());
    expect(spans).toHaveLength(2);
    for (const span of spans) {
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      expect(span.attributes["session_store.outcome"]).toBe("error");
      expect(span.events.some((event) => event.name === "exception")).toBe(true);
    }
    expect(spans[0]?.attributes["error.type"]).toBe(ErrorCode.INVALID_SESSION_ID);
    expect(spans[1]?.attributes["error.type"]).toBe("unknown");
    expect(spans[1]?.status.message).toContain(hashId(SECRET_ID));
    const everything = JSON.stringify(exporter.getFinishedSpans().map(dump));
    expect(everything).not.toContain(SECRET_ID);
  });

  it("nests under the caller's span, with ioredis CLIENT spans as children", async () => {
    const store = await makeStore(backend);
    await tracer().startActiveSpan("request", async (request) => {
      await store.setSession("nested", 1);
      await store.getSession("nested");
      request.end();
    });
    const spans = exporter.getFinishedSpans();
    const request = spans.find((span) => span.name === "request");
    const get = spans.find((span) => span.name === "session_store.get");
    const set = spans.find((span) => span.name === "session_store.set");
    expect(parentId(get as ReadableSpan)).toBe(request?.spanContext().spanId);
    expect(parentId(set as ReadableSpan)).toBe(request?.spanContext().spanId);
    const clients = spans.filter((span) => span.kind === SpanKind.CLIENT);
    if (backend === "memory") {
      expect(clients).toHaveLength(0);
    } else {
      const underGet = clients.filter((span) => parentId(span) === get?.spanContext().spanId);
      const underSet = clients.filter((span) => parentId(span) === set?.spanContext().spanId);
      expect(underGet.length).toBeGreaterThanOrEqual(1);
      expect(underSet.length).toBeGreaterThanOrEqual(1);
      for (const client of clients)
        expect(client.spanContext().traceId).toBe(request?.spanContext().traceId);
    }
  });
});

describe("lock spans", () => {
  it("adds a retry event to the waiting acquisition", async () => {
    const registry = new Registry();
    const holder = await makeStore("redis");
    const prefix = `tracing${prefixes}:`;
    const waiter = instrument(
      await createRedisSessionStore({ redisUrl: redis.url, prefix, instrumentation: false }),
      { tracer: tracer(), registry },
    );
    open.push(waiter);
    const lock = await holder.acquireLock("queue", { ttl: 10_000 });
    const waiting = waiter.acquireLock("queue", { ttl: 10_000, waitTimeout: 10_000 });
    const retries = async () =>
      (await registry.getSingleMetric(METRIC_NAMES.lockRetries)?.get())?.values[0]?.value ?? 0;
    const deadline = Date.now() + 5000;
    while ((await retries()) < 1) {
      if (Date.now() > deadline) throw new Error("no retry seen");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await lock.release();
    await (await waiting).release();
    const acquires = exporter
      .getFinishedSpans()
      .filter((span) => span.name === "session_store.lock_acquire");
    const waited = acquires.find((span) =>
      span.events.some((event) => event.name === LOCK_RETRY_EVENT),
    );
    expect(waited).toBeDefined();
    const event = waited?.events.find((e) => e.name === LOCK_RETRY_EVENT);
    expect(event?.attributes?.["session_store.lock.attempt"]).toBe(1);
    expect(event?.attributes?.["session_store.lock.reason"]).toBe("held");
  });
});

describe("tracing failures and no-op paths", () => {
  it("records nothing and computes nothing when no span records", async () => {
    const off = new BasicTracerProvider({
      sampler: new AlwaysOffSampler(),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const store = await makeStore("memory", { tracer: off.getTracer("off") });
    await store.setSession("quiet", 1);
    expect(await store.getSession("quiet")).toBe(1);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    // The global (no-op, no SDK registered) tracer works too.
    const plain = instrument(createMemorySessionStore({ instrumentation: false }));
    open.push(plain);
    await plain.setSession("quiet", 2);
    expect(await plain.getSession("quiet")).toBe(2);
    expect(trace.getActiveSpan()).toBeUndefined();
    await off.shutdown();
  });

  it("never lets a throwing exporter or tracer change a result", async () => {
    const throwing: SpanExporter = {
      export: () => {
        throw new Error("exporter down");
      },
      shutdown: async () => {},
    };
    const broken = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(throwing)] });
    const explosive = {
      startSpan: () => {
        throw new Error("tracer down");
      },
      startActiveSpan: () => {
        throw new Error("tracer down");
      },
    } as unknown as Tracer;
    for (const t of [broken.getTracer("broken"), explosive]) {
      for (const backend of ["memory", "redis"] as const) {
        const store = await makeStore(backend, { tracer: t });
        await store.setSession("fine", { ok: true });
        expect(await store.getSession("fine")).toEqual({ ok: true });
        expect(await store.withLock("fine", async () => "locked")).toBe("locked");
        await expect(store.setSession("bad id", 1)).rejects.toMatchObject({
          code: ErrorCode.INVALID_SESSION_ID,
        });
      }
    }
    await broken.shutdown();
  });
});

function dump(span: ReadableSpan): unknown {
  return {
    name: span.name,
    attributes: span.attributes,
    events: span.events,
    status: span.status,
    links: span.links,
  };
}
