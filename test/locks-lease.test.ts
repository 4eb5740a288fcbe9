/**
 * A lease that ended while the holder could not run (event loop blocked, process frozen by
 * SIGSTOP) must read as lost the first time the holder looks, before any timer had its turn.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemorySessionStore, createRedisSessionStore } from "../src/factory.js";
import type { SessionStore } from "../src/types.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const HOLDER = path.join(ROOT, "test/fixtures/lock-holder.ts");
const silent = { info: () => {}, warn: () => {}, error: () => {} };

/** Spins until the wall clock is `ms` past `until`: no timer, no I/O callback can run. */
function blockUntil(until: number, ms = 50): void {
  while (Date.now() < until + ms) {
    // busy on purpose
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Holder {
  child: ChildProcess;
  next(): Promise<Record<string, unknown>>;
}

/** Starts the holder fixture; `next()` yields its JSON lines, failing after 20 s. */
function spawnHolder(args: string[]): Holder {
  const child = spawn(process.execPath, ["--import", "tsx", HOLDER, ...args], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const queue: Array<Record<string, unknown>> = [];
  const waiting: Array<(line: Record<string, unknown>) => void> = [];
  createInterface({ input: child.stdout as NonNullable<typeof child.stdout> }).on("line", (l) => {
    const parsed = JSON.parse(l) as Record<string, unknown>;
    const take = waiting.shift();
    if (take) take(parsed);
    else queue.push(parsed);
  });
  const next = (): Promise<Record<string, unknown>> => {
    const ready = queue.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("holder did not answer")), 20_000);
      waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  };
  return { child, next };
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

function stopHolder(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGCONT");
  child.kill("SIGKILL");
}

describe.each([
  { name: "memory store", redis: false },
  { name: "redis store", redis: true },
])("lease end on the $name", ({ redis }) => {
  let node: RedisNode | undefined;
  let store: SessionStore;
  let target = "memory";

  beforeAll(async () => {
    if (redis) {
      node = await startRedis();
      target = node.url;
      store = await createRedisSessionStore({ redisUrl: target, prefix: "lease:", logger: silent });
    } else {
      store = createMemorySessionStore({ prefix: "lease:" });
    }
  });
  afterAll(async () => {
    await store?.disconnect();
    await node?.stop();
  });

  it("lock.signal reads aborted (ERR_LOCK_LOST) right after an event-loop block past expiresAt", async () => {
    const lock = await store.acquireLock("blocked", { ttl: 100, waitTimeout: 0 });
    expect(lock.signal.aborted).toBe(false);
    blockUntil(lock.expiresAt);
    // Read synchronously: the expiry timer has not had a chance to run.
    expect(lock.signal.aborted).toBe(true);
    expect((lock.signal.reason as { code: string }).code).toBe("ERR_LOCK_LOST");
    await expect(lock.extend()).rejects.toMatchObject({ code: "ERR_LOCK_LOST" });
    await lock.release();
    const next = await store.acquireLock("blocked", { waitTimeout: 0 });
    await next.release();
  });

  it("withLock rejects ERR_LOCK_LOST when the lease ended before fn settled", async () => {
    const result = store.withLock(
      "blocked-fn",
      async (lock) => {
        await sleep(1);
        blockUntil(lock.expiresAt);
        return "written too late";
      },
      { ttl: 100, waitTimeout: 0 },
    );
    await expect(result).rejects.toMatchObject({ code: "ERR_LOCK_LOST" });
    // The lock was given back all the same.
    const next = await store.acquireLock("blocked-fn", { waitTimeout: 0 });
    await next.release();
  });

  it("withLock still resolves when fn releases the lock itself, and an error of fn still wins", async () => {
    expect(
      await store.withLock("self-release", async (lock) => {
        await lock.release();
        return 7;
      }),
    ).toBe(7);
    const boom = new Error("boom");
    await expect(
      store.withLock(
        "late-error",
        async (lock) => {
          blockUntil(lock.expiresAt);
          throw boom;
        },
        { ttl: 100 },
      ),
    ).rejects.toBe(boom);
  });

  it("a holder frozen by SIGSTOP past its lease sees lock.signal aborted on its first look", async () => {
    const ttl = 400;
    const holder = spawnHolder([target, "signal", String(ttl)]);
    try {
      expect((await holder.next()).event).toBe("held");
      holder.child.kill("SIGSTOP");
      await sleep(ttl + 600);
      holder.child.kill("SIGCONT");
      expect(await holder.next()).toEqual({ event: "past", aborted: true });
      expect(await exited(holder.child)).toBe(0);
    } finally {
      stopHolder(holder.child);
    }
  });

  it("a withLock frozen by SIGSTOP past its lease rejects ERR_LOCK_LOST when fn returns", async () => {
    const ttl = 400;
    const holder = spawnHolder([target, "withLock", String(ttl)]);
    try {
      expect((await holder.next()).event).toBe("inside");
      holder.child.kill("SIGSTOP");
      await sleep(ttl + 600);
      // Queued while frozen: fn returns on the first turn of the loop after SIGCONT.
      holder.child.stdin?.write("go\n");
      holder.child.kill("SIGCONT");
      expect(await holder.next()).toEqual({ event: "result", ok: false, code: "ERR_LOCK_LOST" });
      expect(await exited(holder.child)).toBe(0);
    } finally {
      stopHolder(holder.child);
    }
  });
});
