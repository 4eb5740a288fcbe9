import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { SessionStore } from "../../src/index.js";
import type { Experiment } from "../experiment.js";
import { sleep, thaw } from "../faults.js";
import {
  checkGrants,
  DECREASED,
  type Grant,
  leaseEndOf,
  monotonicNow,
  OVERLAPS,
  REPEATED,
} from "../grants.js";
import type { HolderConfig, HolderMessage, Scenario } from "../holder.js";
import { REFUSED } from "../lock-log.js";
import { LockDeployment } from "../lock-nodes.js";
import { type Probe, UNHANDLED } from "../probe.js";
import { CRASHES } from "../supervise.js";

const HOLDER = fileURLToPath(new URL("../holder.ts", import.meta.url));
const LEASE_MS = 1000;
const FROZEN_MS = 2500;
/** A holder runs four scenarios of a few seconds each; past this it is stuck. */
const HOLDER_TIMEOUT_MS = 45_000;
const NOT_ABORTED = "lock.signal not aborted after the lease ended";
const NOT_LOST = "withLock not rejecting with ERR_LOCK_LOST after the lease ended";
const MISSED = "scenarios not exercised";
const SCENARIOS: Scenario[] = [
  "acquire-freeze",
  "withlock-freeze",
  "acquire-block",
  "withlock-block",
];

/**
 * One holder process and what it reports. While the holder is frozen past its lease, the
 * contender (Redis only) takes the same lock: its grant must come after the lease and carry a
 * higher token.
 */
class HolderRun {
  readonly grants: Grant[] = [];
  private readonly seen = new Set<string>();
  private readonly child: ChildProcess;

  constructor(
    private readonly config: HolderConfig,
    private readonly probe: Probe,
    private readonly contender: SessionStore | undefined,
  ) {
    this.child = fork(HOLDER, [JSON.stringify(config)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
  }

  async finish(): Promise<void> {
    let pending = Promise.resolve();
    // One message at a time: a freeze must end before the holder's next report is judged.
    this.child.on("message", (m) => {
      pending = pending.then(() => this.onMessage(m as HolderMessage));
    });
    const timer = setTimeout(() => this.child.kill("SIGKILL"), HOLDER_TIMEOUT_MS);
    const exit = await new Promise<string>((resolve) =>
      this.child.once("exit", (code, signal) => resolve(`code ${code}, signal ${signal}`)),
    );
    clearTimeout(timer);
    await pending;
    const who = this.config.backend;
    if (!this.seen.has("done")) this.probe.violation(CRASHES, `${who} holder exited (${exit})`);
    for (const s of this.config.scenarios) {
      if (!this.seen.has(s)) this.probe.violation(MISSED, `${who} ${s}: no observation`);
    }
  }

  private name(scenario: string): string {
    return `${this.config.backend} ${scenario}`;
  }

  private async onMessage(m: HolderMessage): Promise<void> {
    if (m.type === "holding") {
      const { token, start, leaseEnd } = m;
      this.grants.push({ holder: this.name(m.scenario), token, start, end: Infinity, leaseEnd });
      if (m.scenario.endsWith("freeze")) await this.freezeHolder(m.scenario);
    } else if (m.type === "observed") {
      this.seen.add(m.scenario);
      this.probe.operations++;
      const grant = this.grants.find((g) => g.holder === this.name(m.scenario));
      if (grant) grant.end = m.at;
      const past = Math.round(m.pastLeaseMs);
      if (past <= 0) this.probe.violation(MISSED, `${this.name(m.scenario)}: resumed in its lease`);
      else if (!m.aborted)
        this.probe.violation(NOT_ABORTED, `${this.name(m.scenario)}: ${past} ms after its end`);
    } else if (m.type === "outcome") {
      if (m.outcome !== "ERR_LOCK_LOST")
        this.probe.violation(NOT_LOST, `${this.name(m.scenario)}: ${m.outcome}`);
    } else {
      this.seen.add("done");
      for (const u of m.unhandled) this.probe.violation(UNHANDLED, `holder: ${u}`);
    }
  }

  private async freezeHolder(scenario: Scenario): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined) return;
    process.kill(pid, "SIGSTOP");
    try {
      await sleep(LEASE_MS * 1.2);
      if (this.contender) await this.contend(this.contender, scenario);
      await sleep(Math.max(0, FROZEN_MS - LEASE_MS * 1.2));
    } finally {
      thaw(pid);
    }
  }

  private async contend(store: SessionStore, scenario: Scenario): Promise<void> {
    try {
      const lock = await this.probe.call(
        "acquireLock while the holder is frozen",
        () => store.acquireLock(`holder-${scenario}`, { ttl: LEASE_MS, waitTimeout: LEASE_MS }),
        LEASE_MS,
      );
      const start = monotonicNow();
      await lock.release().catch(() => {});
      const leaseEnd = leaseEndOf(lock.expiresAt);
      const holder = `contender ${scenario}`;
      this.grants.push({ holder, token: lock.fencingToken, start, end: monotonicNow(), leaseEnd });
    } catch (err) {
      const code = (err as { code?: string }).code ?? String(err);
      this.probe.violation(REFUSED, `contender ${scenario}: ${code}`);
    }
  }
}

/**
 * A holder frozen by SIGSTOP past its lease, or blocking its own event loop past it, must find
 * `lock.signal` aborted when it resumes, and `withLock` must reject with ERR_LOCK_LOST.
 */
export const experiment: Experiment = {
  figures: [NOT_ABORTED, NOT_LOST, MISSED, REPEATED, DECREASED, OVERLAPS, REFUSED, CRASHES],
  async run(ctx, probe) {
    const deployment = await LockDeployment.start(ctx.commandTimeoutMs);
    try {
      const base = {
        commandTimeoutMs: ctx.commandTimeoutMs,
        leaseMs: LEASE_MS,
        scenarios: SCENARIOS,
      };
      const lockNodes = deployment.locks.map((n) => n.url);
      const redis = new HolderRun(
        { ...base, backend: "redis", dataUrl: deployment.data.url, lockNodes },
        probe,
        await deployment.store(LEASE_MS),
      );
      await redis.finish();
      for (const s of SCENARIOS) {
        const ofScenario = redis.grants.filter((g) => g.holder.endsWith(s));
        for (const f of checkGrants(ofScenario)) probe.violation(f.figure, f.detail);
      }
      await new HolderRun({ ...base, backend: "memory" }, probe, undefined).finish();
    } finally {
      await deployment.stop();
    }
  },
};
