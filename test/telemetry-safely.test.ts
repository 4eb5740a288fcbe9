import { randomUUID } from "node:crypto";
import { type DiagLogger, DiagLogLevel, diag, type Tracer } from "@opentelemetry/api";
import { Histogram, Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createMemorySessionStore } from "../src/factory.js";
import { instrument } from "../src/telemetry/instrument.js";
import { METRIC_NAMES } from "../src/telemetry/metrics.js";
import { reportSwallowed, safely } from "../src/telemetry/safely.js";

const warn = vi.fn();
const logger: DiagLogger = {
  error: vi.fn(),
  warn,
  info: vi.fn(),
  debug: vi.fn(),
  verbose: vi.fn(),
};

beforeEach(() => {
  warn.mockReset();
  diag.setLogger(logger, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
});

afterEach(() => {
  diag.disable();
});

/** The warnings that name `site`. */
const warningsAbout = (site: string) =>
  warn.mock.calls.filter(([message]) => String(message).includes(`"${site}"`));

describe("safely", () => {
  it("returns the result, or the fallback after a throw, reported once per site", () => {
    const site = `site ${randomUUID()}`;
    const other = `site ${randomUUID()}`;
    const boom = new Error("registry down");
    expect(safely(site, () => 42, 0)).toBe(42);
    expect(warningsAbout(site)).toHaveLength(0);
    for (let i = 0; i < 3; i++) {
      expect(
        safely(
          site,
          () => {
            throw boom;
          },
          "fallback",
        ),
      ).toBe("fallback");
    }
    expect(warningsAbout(site)).toEqual([[expect.stringContaining(site), boom]]);
    reportSwallowed(other, boom);
    reportSwallowed(other, boom);
    expect(warningsAbout(other)).toHaveLength(1);
  });

  it("never throws, even when the diag logger does", () => {
    warn.mockImplementation(() => {
      throw new Error("logger down");
    });
    const site = `site ${randomUUID()}`;
    expect(() => reportSwallowed(site, new Error("x"))).not.toThrow();
    expect(
      safely(
        `site ${randomUUID()}`,
        () => {
          throw new Error("y");
        },
        1,
      ),
    ).toBe(1);
  });

  it("carries a broken tracer's failures out of a store's results, one warning per site", async () => {
    const tracer = {
      startSpan() {
        throw new Error("tracer down");
      },
      startActiveSpan() {
        throw new Error("tracer down");
      },
    } as unknown as Tracer;
    const store = instrument(createMemorySessionStore({ instrumentation: false }), { tracer });
    try {
      for (let i = 0; i < 5; i++) await store.setSession(`s${i}`, { i });
      expect(await store.getSession("s4")).toEqual({ i: 4 });
      expect(await store.withLock("s1", async () => "locked")).toBe("locked");
      expect(warningsAbout("start span")).toHaveLength(1);
    } finally {
      await store.disconnect();
    }
  });

  it("carries a throwing histogram's failures out of a store's results, one warning per site", async () => {
    const registry = new Registry();
    // An application histogram whose bound series fail on every observation.
    class Broken extends Histogram<"operation" | "backend" | "outcome"> {
      override labels(): ReturnType<Histogram<string>["labels"]> {
        const fail = () => {
          throw new Error("histogram down");
        };
        return { observe: fail, startTimer: fail as never };
      }
    }
    new Broken({
      name: METRIC_NAMES.operationDuration,
      help: "h",
      labelNames: ["operation", "backend", "outcome"],
      registers: [registry],
    });
    const store = instrument(createMemorySessionStore({ instrumentation: false }), { registry });
    try {
      for (let i = 0; i < 5; i++) await store.setSession(`s${i}`, { i });
      expect(await store.getSession("s2")).toEqual({ i: 2 });
      expect(await store.hasSession("none")).toBe(false);
      expect(warningsAbout("operation duration")).toHaveLength(1);
    } finally {
      await store.disconnect();
    }
  });
});
