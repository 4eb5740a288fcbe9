import { Cluster, Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  createMemorySessionStore,
  createRedisSessionStore,
  createSessionStore,
  type Logger,
} from "../src/index.js";
import { redactUrl, resolveOptions } from "../src/options.js";
import { describeClient } from "../src/stores/redis-clients.js";
import { freePort, type RedisNode, startRedis } from "./support/redis.js";

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m: string) => lines.push(`info ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
  };
}

/** What ioredis says instead of the cause; none of it may reach a user. */
const FOLLOW_UPS =
  /Connection is closed|Stream isn't writeable|max retries per request|enableOfflineQueue/;

const quiet = { info() {}, warn() {}, error() {} };

describe("an empty REDIS_URL or redisUrl is unset", () => {
  const saved = process.env.REDIS_URL;
  let node: RedisNode;
  beforeAll(async () => {
    node = await startRedis();
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = saved;
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("REDIS_URL= leaves the default, and a memory store starts whatever REDIS_URL holds", async () => {
    process.env.REDIS_URL = "";
    expect(resolveOptions({}).redisUrl).toBe("redis://localhost:6379");
    expect(resolveOptions({ redisUrl: "" }).redisUrlGiven).toBe(false);
    const memory = createMemorySessionStore({ instrumentation: false });
    await memory.setSession("a", 1);
    await memory.disconnect();
    process.env.REDIS_URL = "not a url";
    createMemorySessionStore({ instrumentation: false });
    const preferred = await createSessionStore({ preferMemory: true, instrumentation: false });
    expect(preferred.backend).toBe("memory");
    await preferred.disconnect();
  });

  it('redisUrl: "" falls through to REDIS_URL', async () => {
    process.env.REDIS_URL = node.url;
    const store = await createRedisSessionStore({ redisUrl: "", instrumentation: false });
    await store.setSession("a", { ok: true });
    const raw = new Redis(node.url);
    try {
      expect(await raw.exists("mcp:session:{a}")).toBe(1);
    } finally {
      raw.disconnect();
      await store.disconnect();
    }
  });
});

describe("messages name the real cause, where, and what to do, on one line", () => {
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

  it("a refused connection says ECONNREFUSED, at start and on fallback", async () => {
    const port = await freePort();
    const url = `redis://app:s3cret@127.0.0.1:${port}/?password=q-s3cret`;
    const err = await createRedisSessionStore({ redisUrl: url, connectTimeout: 500 }).catch(
      (e: Error) => e,
    );
    expect(err).toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
    const message = (err as Error).message;
    expect(message).toContain("connection refused (ECONNREFUSED)");
    expect(message).toContain(`redis://app:***@127.0.0.1:${port}/?password=***`);
    expect(message).toMatch(/start Redis there/);
    expect(message).not.toMatch(FOLLOW_UPS);
    expect(message).not.toMatch(/s3cret|\n/);

    const logger = recordingLogger();
    const store = await createSessionStore({ redisUrl: url, connectTimeout: 500, logger });
    expect(store.backend).toBe("memory");
    await store.disconnect();
    const warnings = logger.lines.filter((l) => l.startsWith("warn"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("ECONNREFUSED");
    expect(warnings[0]).toContain("falling back to the in-memory session store");
    // The user never set a `fallback` option: the line does not talk about one.
    expect(warnings[0]).not.toMatch(/\bfallback\b/);
    expect(logger.lines.join("\n")).not.toMatch(/s3cret|unreachable/);
    expect(logger.lines.join("\n")).not.toMatch(FOLLOW_UPS);
  });

  it("a wrong password says authentication failed, not unreachable", async () => {
    const node = await startRedis();
    try {
      const admin = new Redis(node.url);
      await admin.config("SET", "requirepass", "right-s3cret");
      admin.disconnect();
      const url = `redis://:wrong-s3cret@127.0.0.1:${node.port}`;
      const err = await createRedisSessionStore({ redisUrl: url, connectTimeout: 500 }).catch(
        (e: Error) => e,
      );
      expect(err).toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
      const message = (err as Error).message;
      expect(message).toMatch(/authentication failed \((WRONGPASS|NOAUTH)\)/);
      expect(message).toContain("check the user and password");
      expect(message).not.toMatch(/unreachable|s3cret|\n/);
      expect(message).not.toMatch(FOLLOW_UPS);
    } finally {
      await node.stop();
    }
  });

  it("calls and health() after Redis died name the cause, not ioredis' follow-up errors", async () => {
    const node = await startRedis();
    const logger = recordingLogger();
    const store = await createRedisSessionStore({
      redisUrl: node.url,
      commandTimeout: 500,
      instrumentation: false,
      logger,
    });
    try {
      await store.setSession("a", 1);
      await node.kill();
      // Let the client see the refused reconnects.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const err = await store.getSession("a").catch((e: Error) => e);
      expect(err).toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
      expect((err as Error).message).toContain(`Redis at ${node.url} is unavailable`);
      expect((err as Error).message).toMatch(/ECONNREFUSED|connection lost/);
      expect((err as Error).message).not.toMatch(FOLLOW_UPS);
      const health = await store.health();
      expect(health.ok).toBe(false);
      expect(health.detail).not.toMatch(FOLLOW_UPS);
      expect(logger.lines.join("\n")).not.toMatch(FOLLOW_UPS);
    } finally {
      await store.disconnect();
      await node.stop();
    }
  });
});

describe("every credential form ioredis accepts is redacted", () => {
  it("redactUrl", () => {
    const cases: Array<[string, string]> = [
      ["redis://user:pass@h:1", "redis://user:***@h:1"],
      ["redis://:pass@h:1/2", "redis://:***@h:1/2"],
      ["redis://h:1/?password=pass", "redis://h:1/?password=***"],
      [
        "redis://h:1/0?username=u&password=pass&db=3",
        "redis://h:1/0?username=***&password=***&db=3",
      ],
      ["rediss://h:1?sentinelPassword=pass&family=6", "rediss://h:1?sentinelPassword=***&family=6"],
      ["redis://user:pa ss@h/?password=x y", "redis://user:***@h/?password=***"],
      ["redis://h:1", "redis://h:1"],
    ];
    for (const [url, redacted] of cases) expect(redactUrl(url)).toBe(redacted);
  });

  it("describeClient prints host:port only, for standalone, Sentinel and Cluster clients", () => {
    const standalone = new Redis({ host: "h", port: 1, password: "s3cret", lazyConnect: true });
    const sentinel = new Redis({
      sentinels: [{ host: "s", port: 2 }],
      name: "main",
      password: "s3cret",
      sentinelPassword: "s3cret",
      lazyConnect: true,
    });
    const cluster = new Cluster([{ host: "c", port: 3 }], {
      lazyConnect: true,
      redisOptions: { password: "s3cret" },
    });
    try {
      expect(describeClient(standalone)).toBe("h:1");
      expect(describeClient(sentinel)).toBe('sentinel "main" via s:2');
      expect(describeClient(cluster)).toBe("cluster");
      expect(describeClient(standalone, "redis://u:s3cret@h:1/?password=s3cret")).toBe("h:1");
    } finally {
      standalone.disconnect();
      sentinel.disconnect();
      cluster.disconnect();
    }
  });

  it("a Cluster that cannot start is described by its seeds, without their passwords", async () => {
    const port = await freePort();
    const err = await createRedisSessionStore({
      redis: { clusterNodes: [`redis://:s3cret@127.0.0.1:${port}`] },
      connectTimeout: 500,
      logger: quiet,
    }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
    const message = (err as Error).message;
    expect(message).toContain(`cluster 127.0.0.1:${port}`);
    expect(message).not.toMatch(/s3cret|\n/);
    expect(message).not.toMatch(FOLLOW_UPS);
  });
});
