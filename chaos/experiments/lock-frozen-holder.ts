import { fork } from "node:child_process";
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
import type { Probe } from "../probe.js";
import { CRASHES } from "../supervise.js";

const HOLDER = fileURLToPath(new URL("../holder.ts", import.meta.url));
const LEASE_MS = 1000;
const FROZEN_MS = 2500;
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
 * Runs one holder process through every scenario. While a holder is frozen past its lease, the
 * parent (Redis) takes the same lock: its token must be higher and its grant after the lease.
 */
async function holder(
  config: HolderConfig,
  probe: Probe,
  contender: SessionStore | undefined,
  grants: Grant[],
): Promise<void> {
  const child = fork(HOLDER, [JSON.stringify(config)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const seen = new Set<string>();
  let pending = Promise.resolve();
  const onMessage = async (m: HolderMessage): Promise<void> => {
    if (m.type === "holding") {
      grants.push({
        holder: `${config.backend} ${m.scenario}`,
        token: m.token,
        start: m.start,
        end: Number.POSITIVE_INFINITY,
        leaseEnd: m.leaseEnd,
      });
      if (!m.scenario.endsWith("freeze") || child.pid === undefined) return;
      process.kill(child.pid, "SIGSTOP");
      try {
        await sleep(LEASE_MS * 1.2);
        if (contender) await contend(contender, m.scenario, probe, grants);
        await sleep(Math.max(0, FROZEN_MS - LEASE_MS * 1.2));
      } finally {
        thaw(child.pid);
      }
    } else if (m.type === "observed") {
      seen.add(`observed ${m.scenario}`);
      probe.operations++;
      const grant = grants.find((g) => g.holder === `${config.backend} ${m.scenario}`);
      if (grant) grant.end = m.at;
      if (m.pastLeaseMs <= 0)
        probe.violation(MISSED, `${config.backend} ${m.scenario}: resumed before the lease end`);
      else if (!m.aborted)
        probe.violation(
          NOT_ABORTED,
          `${config.backend} ${m.scenario}: ${Math.round(m.pastLeaseMs)} ms after the lease end`,
        );
    } else if (m.type === "outcome") {
      seen.add(`outcome ${m.scenario}`);
      if (m.outcome !== "ERR_LOCK_LOST")
        probe.violation(NOT_LOST, `${config.backend} ${m.scenario}: ${m.outcome}`);
    } else if (m.type === "done") {
      seen.add("done");
      for (const u of m.unhandled) probe.violation("unhandled rejections", `holder: ${u}`);
    }
  };
  child.on("message", (m) => {
    pending = pending.then(() => onMessage(m as HolderMessage));
  });
  const exit = await new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  await pending;
  if (exit.code !== 0 || !seen.has("done")) {
    probe.violation(
      CRASHES,
      `${config.backend} holder exited with code ${exit.code}, signal ${exit.signal}`,
    );
  }
  for (const s of config.scenarios) {
    if (!seen.has(`observed ${s}`))
      probe.violation(MISSED, `${config.backend} ${s}: no observation`);
  }
}

/** The parent takes the frozen holder's lock once its lease is over. */
async function contend(store: SessionStore, scenario: string, probe: Probe, grants: Grant[]) {
  try {
    const lock = await probe.call(
      "acquireLock while the holder is frozen",
      () => store.acquireLock(`holder-${scenario}`, { ttl: LEASE_MS, waitTimeout: LEASE_MS }),
      LEASE_MS,
    );
    const start = monotonicNow();
    await lock.release().catch(() => {});
    grants.push({
      holder: `contender ${scenario}`,
      token: lock.fencingToken,
      start,
      end: monotonicNow(),
      leaseEnd: leaseEndOf(lock.expiresAt),
    });
  } catch (err) {
    probe.violation(
      REFUSED,
      `contender ${scenario}: ${(err as { code?: string }).code ?? String(err)}`,
    );
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
      const grants: Grant[] = [];
      await holder(
        {
          ...base,
          backend: "redis",
          dataUrl: deployment.data.url,
          lockNodes: deployment.locks.map((n) => n.url),
        },
        probe,
        await deployment.store(LEASE_MS),
        grants,
      );
      await holder({ ...base, backend: "memory" }, probe, undefined, []);
      for (const s of SCENARIOS) {
        const ofScenario = grants.filter((g) => g.holder.endsWith(s));
        for (const f of checkGrants(ofScenario)) probe.violation(f.figure, f.detail);
      }
    } finally {
      await deployment.stop();
    }
  },
};
