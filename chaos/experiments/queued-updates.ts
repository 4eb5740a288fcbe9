import { Redis } from "ioredis";
import { createRedisSessionStore, type SessionStore } from "../../src/index.js";
import { startRedis } from "../../test/support/redis.js";
import type { Experiment } from "../experiment.js";
import { freeze, silent, thaw, until } from "../faults.js";
import type { Probe } from "../probe.js";

const QUEUED = 5;
const CODES = ["ERR_BACKEND_UNAVAILABLE"] as const;

/** Calls queued on one id while Redis is frozen: each must answer within its own bound. */
async function burst(store: SessionStore, probe: Probe, label: string): Promise<void> {
  const calls = Array.from({ length: QUEUED }, (_, i) => [
    probe.call(`${label} updateSession #${i + 1}`, () =>
      store.updateSession<number>("q", (n) => (n ?? 0) + 1),
    ),
    probe.call(`${label} setSession #${i + 1}`, () => store.setSession("q", i)),
    probe.call(`${label} getSession #${i + 1}`, () => store.getSession("q")),
  ]).flat();
  const outcomes = await Promise.allSettled(calls);
  for (const o of outcomes) {
    if (o.status === "rejected") probe.expectCodes(`${label} queued call`, o.reason, CODES);
  }
}

/**
 * Per-call timers (a client passed in) and the store's own watchdog (a URL): both must answer
 * every call queued behind others within commandTimeout of its own start.
 */
export const experiment: Experiment = {
  figures: [],
  async run(ctx, probe) {
    const node = await startRedis();
    const client = new Redis(node.url);
    client.on("error", () => {
      // Expected while the server is frozen; the store reports through its calls.
    });
    const common = { commandTimeout: ctx.commandTimeoutMs, instrumentation: false as const };
    const stores: Array<[string, SessionStore]> = [];
    try {
      stores.push([
        "client passed in",
        await createRedisSessionStore({ ...common, redis: client }),
      ]);
      stores.push([
        "URL",
        await createRedisSessionStore({ ...common, redisUrl: node.url, logger: silent }),
      ]);
      for (const [label, store] of stores) {
        await store.setSession("q", 0);
        const pid = freeze(node);
        try {
          await burst(store, probe, label);
        } finally {
          thaw(pid);
        }
        await until(`${label} store answering again`, 10_000, async () => {
          await store.setSession("q", 0);
          return true;
        });
      }
    } finally {
      for (const [, store] of stores) await store.disconnect();
      client.disconnect();
      await node.stop();
    }
  },
};
