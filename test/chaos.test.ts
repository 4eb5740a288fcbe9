import { describe, expect, it } from "vitest";
import { parseCli } from "../chaos/cli.js";
import {
  checkGrants,
  DECREASED,
  monotonicNow,
  OVERLAPS,
  REPEATED,
  watchLease,
} from "../chaos/grants.js";
import {
  CounterHistory,
  checkCounter,
  checkSeq,
  DUPLICATED,
  LOST,
  SeqHistory,
  STALE,
} from "../chaos/history.js";
import { runExperiments } from "../chaos/runner.js";

describe("chaos checks", () => {
  it("flag a rejected older write that ended up over an acknowledged one, and lost writes", () => {
    const h = new SeqHistory();
    h.acked(1);
    h.failed(2);
    h.acked(3);
    expect(checkSeq("k", h, 3)).toEqual([]);
    expect(checkSeq("k", h, 2).map((f) => f.figure)).toEqual([STALE]);
    expect(checkSeq("k", h, 1).map((f) => f.figure)).toEqual([LOST]);
    expect(checkSeq("k", h, null).map((f) => f.figure)).toEqual([LOST]);
    // A rejected write may still land when nothing later was acknowledged: indeterminate, fine.
    h.failed(4);
    expect(checkSeq("k", h, 4)).toEqual([]);
  });

  it("flag counters below their acknowledged increments or above all that were sent", () => {
    const c = new CounterHistory();
    c.acked = 10;
    c.failed = 2;
    expect(checkCounter("c", c, 11)).toEqual([]);
    expect(checkCounter("c", c, 9).map((f) => f.figure)).toEqual([LOST]);
    expect(checkCounter("c", c, 13).map((f) => f.figure)).toEqual([DUPLICATED]);
  });

  it("flag repeated or decreasing tokens and grants inside another valid lease", () => {
    const g = (holder: string, token: number, start: number, end: number, leaseEnd = 1e9) => ({
      holder,
      token,
      start,
      end,
      leaseEnd,
    });
    expect(checkGrants([g("a", 1, 0, 10), g("b", 2, 10, 20)])).toEqual([]);
    // A holder frozen past its lease does not exclude the next one: only its valid part counts.
    expect(checkGrants([g("a", 1, 0, 100, 50), g("b", 2, 60, 70)])).toEqual([]);
    const figures = (grants: ReturnType<typeof g>[]) => checkGrants(grants).map((f) => f.figure);
    expect(figures([g("a", 2, 0, 10), g("b", 2, 20, 30)])).toEqual([REPEATED]);
    expect(figures([g("a", 3, 0, 10), g("b", 2, 20, 30)])).toEqual([DECREASED]);
    expect(figures([g("a", 1, 0, 100), g("b", 2, 50, 60)])).toEqual([OVERLAPS]);
  });
});

describe("chaos lease log", () => {
  it("ends a lease at expiresAt, or earlier where the lock aborted its signal", () => {
    const controller = new AbortController();
    const lock = { expiresAt: Date.now() + 10_000, signal: controller.signal };
    const leaseEnd = watchLease(lock);
    expect(leaseEnd()).toBeGreaterThan(monotonicNow() + 9_000);
    controller.abort();
    expect(leaseEnd()).toBeLessThanOrEqual(monotonicNow());
  });
});

describe("npm run chaos flags", () => {
  it("select experiments, runs and timeouts, and refuse what they do not know", () => {
    expect(parseCli([])).toMatchObject({ only: [], quick: false, runs: undefined, out: "docs" });
    expect(parseCli(["--quick", "--only", "cluster,standalone", "--runs", "3"])).toMatchObject({
      only: ["cluster", "standalone"],
      quick: true,
      runs: 3,
      commandTimeoutMs: 1000,
    });
    expect(() => parseCli(["--only", "nope"])).toThrow(/unknown experiment nope/);
    expect(() => parseCli(["--runs", "0"])).toThrow(/positive integer/);
    expect(() => parseCli(["--bogus"])).toThrow();
  });
});

describe("npm run chaos --quick", () => {
  it("runs the standalone and lock-quorum experiments in worker processes, every figure zero", async () => {
    const results = await runExperiments({
      only: ["standalone", "lock-quorum"],
      quick: true,
      commandTimeoutMs: 1000,
      marginMs: 500,
    });
    expect(results.map((r) => r.name)).toEqual(["standalone", "lock-quorum"]);
    for (const r of results) {
      expect(r.details, r.name).toEqual([]);
      expect(r.operations, r.name).toBeGreaterThan(0);
      expect(r.held, r.name).toBe(true);
    }
    // The figures are declared, so a zero means checked, not absent.
    expect(results[0]?.figures).toMatchObject({ [STALE]: 0, [LOST]: 0, crashes: 0 });
    expect(results[1]?.figures).toMatchObject({ [REPEATED]: 0, [OVERLAPS]: 0 });
  }, 60_000);
});
