/** `withTimeout` (src/timeout.ts), the one deadline helper of src/mcp and the metrics handler. */
import { describe, expect, it, vi } from "vitest";
import { TimeoutError, withTimeout } from "../src/timeout.js";

describe("withTimeout", () => {
  it("resolves or rejects with the promise when it settles first, and clears its timer", async () => {
    vi.useFakeTimers();
    try {
      await expect(withTimeout(Promise.resolve(7), 1_000)).resolves.toBe(7);
      await expect(withTimeout(Promise.reject(new Error("boom")), 1_000)).rejects.toThrow("boom");
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("rejects with a typed TimeoutError naming what did not answer", async () => {
    const never = new Promise<never>(() => {});
    const err = await withTimeout(never, 10, "PING").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err).toMatchObject({
      name: "TimeoutError",
      ms: 10,
      message: "PING: no answer within 10 ms",
    });
    await expect(withTimeout(never, 10)).rejects.toThrow("no answer within 10 ms");
  });

  it("a non-finite deadline means none; a late rejection is not unhandled", async () => {
    await expect(withTimeout(Promise.resolve("x"), Number.POSITIVE_INFINITY)).resolves.toBe("x");
    const late = new Promise((_, reject) => setTimeout(() => reject(new Error("late")), 20));
    await expect(withTimeout(late, 5)).rejects.toBeInstanceOf(TimeoutError);
    await new Promise((resolve) => setTimeout(resolve, 30));
  });
});
