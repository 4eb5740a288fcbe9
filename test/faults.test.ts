import { createServer, type Server, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  createRedisSessionStore,
  createSessionStore,
  isRedisAvailable,
  type Logger,
  type SessionStore,
} from "../src/index.js";
import { eventually } from "./support/eventually.js";
import { freePort, type RedisNode, startRedis } from "./support/redis.js";

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeEach(() => {
  unhandled.length = 0;
  process.on("unhandledRejection", onUnhandled);
});
afterEach(() => {
  process.off("unhandledRejection", onUnhandled);
  expect(unhandled).toEqual([]);
});

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m: string) => lines.push(`info ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
  };
}

/** A TCP server that accepts connections and never answers: a Redis that hangs. */
async function silentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `redis://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Every store call, each expected to fail with `code` within `withinMs`. */
async function expectAllFail(store: SessionStore, code: string, withinMs: number): Promise<void> {
  const calls: Array<[string, () => Promise<unknown>]> = [
    ["get", () => store.getSession("a")],
    ["set", () => store.setSession("a", { v: 2 })],
    ["update", () => store.updateSession("a", () => 3)],
    ["delete", () => store.deleteSession("a")],
    ["has", () => store.hasSession("a")],
    ["touch", () => store.touchSession("a")],
    ["ttl", () => store.getSessionTtl("a")],
    [
      "list",
      async () => {
        for await (const _ of store.listSessions()) break;
      },
    ],
    ["lock", () => store.acquireLock("a", { waitTimeout: 0 })],
  ];
  await Promise.all(
    calls.map(async ([name, call]) => {
      const start = performance.now();
      const err = await call().then(
        () => new Error(`${name} resolved`),
        (e: unknown) => e,
      );
      const elapsed = performance.now() - start;
      expect({ name, code: (err as { code?: string }).code }).toEqual({
        name,
        code:
          name === "lock" ? expect.stringMatching(/ERR_LOCK_QUORUM|ERR_BACKEND_UNAVAILABLE/) : code,
      });
      // The bound is "no call hangs": within the command timeout plus scheduling slack.
      expect(elapsed, `${name} took ${elapsed} ms`).toBeLessThan(withinMs);
    }),
  );
  const health = await store.health();
  expect(health.ok).toBe(false);
}

describe("Redis dies under a running store", () => {
  let node: RedisNode;
  let store: SessionStore;
  const commandTimeout = 500;
  beforeAll(async () => {
    node = await startRedis();
    store = await createRedisSessionStore({
      redisUrl: node.url,
      commandTimeout,
      instrumentation: false,
      logger: recordingLogger(),
    });
  });
  afterAll(async () => {
    await store?.disconnect();
    await node?.stop();
  });

  it("fails every call with ERR_BACKEND_UNAVAILABLE, then recovers by itself after a restart", async () => {
    await store.setSession("a", { v: 1 });
    await node.kill();
    await expectAllFail(store, "ERR_BACKEND_UNAVAILABLE", commandTimeout + 1500);
    await node.restart();
    await eventually(async () => {
      await store.setSession("a", { v: 3 });
    });
    expect(await store.getSession("a")).toEqual({ v: 3 });
    expect((await store.health()).ok).toBe(true);
  });

  it("times out calls to a Redis that stops answering (SIGSTOP), within commandTimeout", async () => {
    await store.setSession("a", { v: 1 });
    process.kill(node.pid as number, "SIGSTOP");
    try {
      await expectAllFail(store, "ERR_BACKEND_UNAVAILABLE", commandTimeout + 1500);
    } finally {
      process.kill(node.pid as number, "SIGCONT");
    }
    // Commands that timed out were still in the server's socket buffer and ran on SIGCONT: a
    // timed-out write is indeterminate, as with any networked store. What must hold: the same
    // store serves again, and reads are consistent with writes made after recovery.
    await eventually(async () => {
      await store.setSession("b", { v: 4 });
      expect(await store.getSession("b")).toEqual({ v: 4 });
    });
  });
});

describe("Redis down at start", () => {
  it("falls back to memory within ~connectTimeout with a warning, when nothing listens", async () => {
    const logger = recordingLogger();
    const port = await freePort();
    const start = performance.now();
    const store = await createSessionStore({
      redisUrl: `redis://user:hunter2@127.0.0.1:${port}`,
      connectTimeout: 300,
      logger,
    });
    expect(performance.now() - start).toBeLessThan(300 + 1500);
    expect(store.backend).toBe("memory");
    await store.setSession("x", 1);
    expect(await store.getSession("x")).toBe(1);
    await store.disconnect();
    const warnings = logger.lines.filter((l) => l.startsWith("warn"));
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toContain("falling back");
    expect(logger.lines.join("\n")).not.toContain("hunter2");
  });

  it("falls back within ~connectTimeout when Redis accepts but never answers", async () => {
    const silent = await silentServer();
    try {
      const start = performance.now();
      const store = await createSessionStore({
        redisUrl: silent.url,
        connectTimeout: 300,
        logger: recordingLogger(),
      });
      expect(performance.now() - start).toBeLessThan(300 + 1500);
      expect(store.backend).toBe("memory");
      await store.disconnect();
    } finally {
      await silent.close();
    }
  });

  it('rejects with ERR_BACKEND_UNAVAILABLE under fallback: "error"', async () => {
    const port = await freePort();
    const start = performance.now();
    await expect(
      createSessionStore({
        redisUrl: `redis://127.0.0.1:${port}`,
        connectTimeout: 300,
        fallback: "error",
      }),
    ).rejects.toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
    await expect(
      createRedisSessionStore({ redisUrl: `redis://127.0.0.1:${port}`, connectTimeout: 300 }),
    ).rejects.toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
    expect(performance.now() - start).toBeLessThan(2 * 300 + 2000);
  });

  it("prints the fallback warning with the default logger even when not verbose", async () => {
    const port = await freePort();
    const warned: unknown[] = [];
    const original = console.warn;
    console.warn = (...args: unknown[]) => warned.push(args.join(" "));
    try {
      const store = await createSessionStore({
        redisUrl: `redis://127.0.0.1:${port}`,
        connectTimeout: 200,
      });
      await store.disconnect();
    } finally {
      console.warn = original;
    }
    expect(warned.join("\n")).toContain("falling back to the in-memory session store");
  });
});

describe("isRedisAvailable", () => {
  let node: RedisNode;
  beforeAll(async () => {
    node = await startRedis();
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("reads REDIS_URL as the store does: trimmed, and an empty url argument is unset", async () => {
    const saved = process.env.REDIS_URL;
    try {
      process.env.REDIS_URL = `  ${node.url}  `;
      expect(await isRedisAvailable()).toBe(true);
      expect(await isRedisAvailable("")).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.REDIS_URL;
      else process.env.REDIS_URL = saved;
    }
  });

  it("answers true for a live server and false, within its timeout, otherwise; never throws", async () => {
    expect(await isRedisAvailable(node.url)).toBe(true);
    const port = await freePort();
    expect(await isRedisAvailable(`redis://127.0.0.1:${port}`, { timeoutMs: 300 })).toBe(false);
    expect(await isRedisAvailable("not a url")).toBe(false);
    expect(await isRedisAvailable(node.url, { timeoutMs: Number.NaN })).toBe(false);
    const silent = await silentServer();
    try {
      const start = performance.now();
      expect(await isRedisAvailable(silent.url, { timeoutMs: 300 })).toBe(false);
      expect(performance.now() - start).toBeLessThan(300 + 1000);
    } finally {
      await silent.close();
    }
  });

  it("closes its connection", async () => {
    const { Redis } = await import("ioredis");
    const admin = new Redis(node.url);
    try {
      const before = Number((await admin.info("clients")).match(/connected_clients:(\d+)/)?.[1]);
      for (let i = 0; i < 5; i++) expect(await isRedisAvailable(node.url)).toBe(true);
      await eventually(async () => {
        const after = Number((await admin.info("clients")).match(/connected_clients:(\d+)/)?.[1]);
        expect(after).toBe(before);
      }, 5000);
    } finally {
      admin.disconnect();
    }
  });
});
