/**
 * A lock holder in a process of its own, so `lock-frozen-holder` can SIGSTOP it while it holds
 * a lease, or let it block its own event loop past the lease end. argv: HolderConfig as JSON.
 * Messages to the parent: HolderMessage.
 */
import {
  createMemorySessionStore,
  createRedisSessionStore,
  isSessionStoreError,
  type Lock,
  type SessionStore,
} from "../src/index.js";
import { monotonicNow } from "./grants.js";

export type Scenario = "acquire-freeze" | "withlock-freeze" | "acquire-block" | "withlock-block";

export interface HolderConfig {
  backend: "memory" | "redis";
  dataUrl?: string;
  lockNodes?: string[];
  commandTimeoutMs: number;
  leaseMs: number;
  scenarios: Scenario[];
}

export type HolderMessage =
  | { type: "holding"; scenario: Scenario; token: number; start: number; leaseEnd: number }
  | { type: "observed"; scenario: Scenario; aborted: boolean; pastLeaseMs: number; at: number }
  | { type: "outcome"; scenario: Scenario; outcome: string }
  | { type: "done"; unhandled: string[] };

const config = JSON.parse(process.argv[2] ?? "{}") as HolderConfig;
const unhandled: string[] = [];
process.on("unhandledRejection", (reason) => unhandled.push(String(reason)));

const send = (message: HolderMessage) =>
  new Promise<void>((resolve) => process.send?.(message, () => resolve()));

async function openStore(): Promise<SessionStore> {
  const common = { commandTimeout: config.commandTimeoutMs, instrumentation: false as const };
  if (config.backend === "memory") return createMemorySessionStore(common);
  return createRedisSessionStore({
    ...common,
    redisUrl: config.dataUrl,
    lockNodes: config.lockNodes,
    logger: { info() {}, warn() {}, error() {} },
  });
}

/** Works under the lock: a short wait (the parent freezes us during it) or a blocked loop. */
async function work(scenario: Scenario, lock: Lock): Promise<void> {
  const leaseEnd = monotonicNow() + (lock.expiresAt - Date.now());
  await send({
    type: "holding",
    scenario,
    token: lock.fencingToken,
    start: monotonicNow(),
    leaseEnd,
  });
  if (scenario.endsWith("freeze")) {
    await new Promise((resolve) => setTimeout(resolve, config.leaseMs / 4));
  } else {
    while (Date.now() < lock.expiresAt + 300) {
      // Blocks the event loop past the lease end, as a long synchronous computation would.
    }
  }
  // Read right after resuming, before any timer of the lock had a chance to run.
  const observed = lock.signal.aborted;
  await send({
    type: "observed",
    scenario,
    aborted: observed,
    pastLeaseMs: Date.now() - lock.expiresAt,
    at: monotonicNow(),
  });
}

const store = await openStore();
for (const scenario of config.scenarios) {
  const resource = `holder-${scenario}`;
  const options = { ttl: config.leaseMs, waitTimeout: config.leaseMs * 3 };
  if (scenario.startsWith("acquire")) {
    const lock = await store.acquireLock(resource, options);
    await work(scenario, lock);
    await lock.release().catch(() => {});
  } else {
    const outcome = await store
      .withLock(resource, (lock) => work(scenario, lock), options)
      .then(
        () => "resolved",
        (err: unknown) => (isSessionStoreError(err) ? err.code : String(err)),
      );
    await send({ type: "outcome", scenario, outcome });
  }
}
await store.disconnect();
await send({ type: "done", unhandled });
process.exit(0);
