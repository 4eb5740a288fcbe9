/**
 * One process of the lock benchmark: runs `contenders` work loops (acquire, hold, release, think)
 * against one library, and reports every wait and grant to the parent over IPC.
 */
import { createRequire } from "node:module";
import { Redis } from "ioredis";
import { Mutex, RedlockMutex } from "redis-semaphore";
import { RedlockManager } from "../src/locks/redlock.js";

export interface RunRequest {
  type: "run";
  lib: Library;
  ports: number[];
  resource: string;
  contenders: number;
  startAt: number;
  durationMs: number;
  holdMs: number;
  thinkMs: number;
  seed: number;
}

export type Library = "mcp-session-store" | "redlock" | "redis-semaphore";

export interface ContenderResult {
  grants: number;
  waits: number[];
  errors: number;
}

export interface RunResult {
  type: "result";
  contenders: ContenderResult[];
}

interface Held {
  release(): Promise<unknown>;
}

const TTL_MS = 10_000;
const WAIT_MS = 10_000;

/** Small deterministic PRNG (mulberry32), so a seed reproduces the hold/think jitter. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> =>
  ms <= 0 ? new Promise((r) => setImmediate(r)) : new Promise((r) => setTimeout(r, ms));

async function setup(
  req: RunRequest,
): Promise<{ acquirers: Array<() => Promise<Held>>; close(): Promise<void> }> {
  const clients = req.ports.map((port) => {
    const c = new Redis(port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 1 });
    c.on("error", () => {});
    return c;
  });
  await Promise.all(clients.map((c) => c.connect()));
  const close = async (): Promise<void> => {
    for (const c of clients) c.disconnect();
  };
  const n = req.contenders;
  if (req.lib === "mcp-session-store") {
    const manager = new RedlockManager({
      nodes: clients.map((client, i) => ({ client, name: `127.0.0.1:${req.ports[i]}` })),
      key: (id, suffix) => `bench:{${id}}:${suffix}`,
      notify: () => {},
      commandTimeout: 2000,
      logger: { info: () => {}, warn: () => {}, error: () => {} },
    });
    const acquire = (): Promise<Held> =>
      manager.acquire(req.resource, { ttlMs: TTL_MS, waitTimeoutMs: WAIT_MS });
    return {
      acquirers: Array.from({ length: n }, () => acquire),
      close: async () => {
        await manager.close();
        await close();
      },
    };
  }
  if (req.lib === "redlock") {
    // redlock 5.0.0-beta.2's types do not resolve under NodeNext; its CommonJS build does.
    const require = createRequire(import.meta.url);
    const Redlock = require("redlock").default as new (
      clients: Redis[],
      settings: Record<string, number>,
    ) => {
      acquire(resources: string[], ttl: number): Promise<Held>;
      on(event: string, fn: () => void): void;
    };
    // Library defaults (retryDelay 200 ms, retryJitter 100 ms), enough retries to wait WAIT_MS.
    const redlock = new Redlock(clients, { retryCount: Math.ceil(WAIT_MS / 200) });
    redlock.on("error", () => {});
    const acquire = (): Promise<Held> => redlock.acquire([`bench:redlock:${req.resource}`], TTL_MS);
    return { acquirers: Array.from({ length: n }, () => acquire), close };
  }
  // redis-semaphore: Mutex on one node, RedlockMutex on several; library defaults (retry 10 ms).
  const options = { lockTimeout: TTL_MS, acquireTimeout: WAIT_MS, refreshInterval: 0 };
  const key = `bench:sem:${req.resource}`;
  const acquirers = Array.from({ length: n }, () => {
    const mutex =
      clients.length === 1
        ? new Mutex(clients[0] as Redis, key, options)
        : new RedlockMutex(clients, key, options);
    return async (): Promise<Held> => {
      await mutex.acquire();
      return { release: () => mutex.release() };
    };
  });
  return { acquirers, close };
}

async function run(req: RunRequest): Promise<RunResult> {
  const { acquirers, close } = await setup(req);
  const random = prng(req.seed);
  const jitter = (ms: number): number => (ms <= 0 ? 0 : ms * (0.5 + random()));
  await sleep(req.startAt - Date.now());
  const end = req.startAt + req.durationMs;
  const results = await Promise.all(
    acquirers.map(async (acquire) => {
      const result: ContenderResult = { grants: 0, waits: [], errors: 0 };
      while (Date.now() < end) {
        const t0 = performance.now();
        let held: Held;
        try {
          held = await acquire();
        } catch {
          // A give-up waited too: it counts in the wait distribution.
          result.waits.push(performance.now() - t0);
          result.errors += 1;
          continue;
        }
        result.waits.push(performance.now() - t0);
        result.grants += 1;
        await sleep(jitter(req.holdMs));
        await held.release().catch(() => {
          result.errors += 1;
        });
        await sleep(jitter(req.thinkMs));
      }
      return result;
    }),
  );
  await close();
  return { type: "result", contenders: results };
}

process.on("message", (msg: RunRequest | { type: "exit" }) => {
  if (msg.type === "exit") {
    process.disconnect?.();
    return;
  }
  run(msg).then(
    (result) => process.send?.(result),
    (err: Error) => process.send?.({ type: "error", message: err.message }),
  );
});
process.send?.({ type: "ready" });
