import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../src/errors.js";
import { createMemorySessionStore } from "../src/factory.js";
import { getOrCreateMetric } from "../src/telemetry/get-or-create-metric.js";
import { instrument } from "../src/telemetry/instrument.js";
import { METRIC_NAMES } from "../src/telemetry/metrics.js";
import type { SessionStore } from "../src/types.js";

const N = METRIC_NAMES;
const DIR = new URL("../src/telemetry/", import.meta.url).pathname;
const sources = readdirSync(DIR)
  .filter((name) => name.endsWith(".ts"))
  .map((name) => ({ name, text: readFileSync(join(DIR, name), "utf8") }));

const open: SessionStore[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((store) => store.disconnect()));
});

describe("src/telemetry", () => {
  it("reaches into no private field of prom-client or ioredis and patches no method", () => {
    expect(sources.length).toBeGreaterThan(5);
    // `[\w)\]]\._x`: a member whose name starts with an underscore (not `..._seconds` in prose).
    const offending =
      /hashMap|bucketValues|_defaultLabels|[\w)\]]\._[A-Za-z]|\.stream\b|\.collect\s*=/;
    const hits = sources.flatMap(({ name, text }) =>
      text
        .split("\n")
        .map((line, i) => ({ line, at: `${name}:${i + 1}` }))
        .filter(({ line }) => offending.test(line))
        .map(({ at, line }) => `${at}: ${line.trim()}`),
    );
    expect(hits).toEqual([]);
  });

  it("swallows errors only through the diag helper (no bare catch outside safely.ts)", () => {
    const bare = sources
      .filter(({ name }) => name !== "safely.ts")
      .filter(({ text }) => /catch\s*\{/.test(text))
      .map(({ name }) => name);
    expect(bare).toEqual([]);
  });
});

describe("metrics the application registered first", () => {
  it("are shared and fed through their public API", async () => {
    const registry = new Registry();
    const duration = new Histogram({
      name: N.operationDuration,
      help: "registered by the application",
      labelNames: ["operation", "backend", "outcome"],
      buckets: [0.001, 1],
      registers: [registry],
    });
    const errors = new Counter({
      name: N.operationErrors,
      help: "registered by the application",
      labelNames: ["operation", "backend", "code"],
      registers: [registry],
    });
    const sessions = new Gauge({
      name: N.sessions,
      help: "registered by the application",
      labelNames: ["backend"],
      registers: [registry],
    });
    const store = instrument(createMemorySessionStore({ instrumentation: false }), { registry });
    open.push(store);
    const again = instrument(createMemorySessionStore({ instrumentation: false }), { registry });
    open.push(again);
    expect(registry.getSingleMetric(N.operationDuration)).toBe(duration);

    await store.setSession("a", { n: 1 });
    await again.setSession("b", { n: 1 });
    await store.getSession("missing");
    await expect(store.setSession("bad id", 1)).rejects.toMatchObject({
      code: ErrorCode.INVALID_SESSION_ID,
    });

    const values = (await duration.get()).values;
    const count = (operation: string, outcome: string) =>
      values.find(
        (v) =>
          v.metricName === `${N.operationDuration}_count` &&
          v.labels.operation === operation &&
          v.labels.outcome === outcome,
      )?.value;
    // The second store joining kept the first one's series (no zero() over existing counts).
    expect(count("set", "ok")).toBe(2);
    expect(count("get", "miss")).toBe(1);
    expect(count("has", "hit")).toBe(0);
    const invalid = (await errors.get()).values.find(
      (v) => v.labels.code === ErrorCode.INVALID_SESSION_ID,
    );
    expect(invalid?.value).toBe(1);
    // A gauge without our collector is left as it is: no series, no patched method.
    expect((sessions as unknown as { collect?: unknown }).collect).toBeUndefined();
    expect((await sessions.get()).values).toEqual([]);
  });

  it("getOrCreateMetric creates once, shares after, and refuses another shape", () => {
    const registry = new Registry();
    const shape = { name: "app_requests_total", type: "counter", labelNames: ["method"] } as const;
    const create = () =>
      new Counter({ name: shape.name, help: "h", labelNames: ["method"], registers: [registry] });
    const first = getOrCreateMetric(registry, shape, create);
    expect(getOrCreateMetric(registry, shape, create)).toBe(first);
    expect(() =>
      getOrCreateMetric(registry, { ...shape, type: "gauge" }, () => {
        throw new Error("not called");
      }),
    ).toThrow(/already holds a metric "app_requests_total"/);
    expect(() =>
      getOrCreateMetric(registry, { ...shape, labelNames: ["path"] }, () => first),
    ).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
  });
});
