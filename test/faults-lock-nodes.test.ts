import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore, type SessionStore } from "../src/index.js";
import { eventually } from "./support/eventually.js";
import { freePort, type RedisNode, startRedis, startRedisNodes } from "./support/redis.js";

function recordingLogger() {
  const lines: string[] = [];
  return {
    lines,
    info: (m: string) => lines.push(`info ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
  };
}

async function nodeErrors(registry: Registry, node: string): Promise<number> {
  const metric = await registry
    .getSingleMetric("mcp_session_store_redlock_node_errors_total")
    ?.get();
  return metric?.values.find((v) => v.labels.node === node)?.value ?? 0;
}

describe("lockNodes with a node down at start", () => {
  let up: RedisNode[] = [];
  let late: RedisNode | undefined;
  let store: SessionStore | undefined;
  beforeAll(async () => {
    up = await startRedisNodes(2);
  });
  afterEach(async () => {
    await store?.disconnect();
    store = undefined;
    await late?.stop();
    late = undefined;
  });
  afterAll(async () => {
    await Promise.all(up.map((n) => n.stop()));
  });

  it("starts with a quorum, warns naming the missing node, counts it, and lets it join when it answers", async () => {
    const port = await freePort();
    const logger = recordingLogger();
    const registry = new Registry();
    const first = up[0] as RedisNode;
    store = await createRedisSessionStore({
      redisUrl: first.url,
      lockNodes: [first.url, (up[1] as RedisNode).url, `redis://app:l0ck-s3cret@127.0.0.1:${port}`],
      connectTimeout: 500,
      commandTimeout: 500,
      logger,
      instrumentation: { registry },
    });
    const warnings = logger.lines.filter((l) => l.startsWith("warn"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`Redlock node 127.0.0.1:${port} is unreachable at start`);
    expect(warnings[0]).toContain("ECONNREFUSED");
    expect(logger.lines.join("\n")).not.toContain("l0ck-s3cret");
    expect(await nodeErrors(registry, `127.0.0.1:${port}`)).toBeGreaterThanOrEqual(1);

    // Two of three nodes are a quorum.
    const lock = await store.acquireLock("s", { ttl: 5000, waitTimeout: 0 });
    await lock.release();

    // The node comes up: a later lock is also taken on it.
    late = await startRedis({
      port,
      args: ["--user", "app", "on", ">l0ck-s3cret", "~*", "&*", "+@all"],
    });
    const raw = new Redis(late.url);
    try {
      await eventually(async () => {
        const held = await (store as SessionStore).acquireLock("s", { ttl: 5000, waitTimeout: 0 });
        try {
          expect(await raw.exists("mcp:session:{s}:lock")).toBe(1);
        } finally {
          await held.release();
        }
      }, 10_000);
    } finally {
      raw.disconnect();
    }
  });

  it("fails with a clear error when fewer than a quorum answer", async () => {
    const ports = [await freePort(), await freePort()];
    const first = up[0] as RedisNode;
    const err = await createRedisSessionStore({
      redisUrl: first.url,
      lockNodes: [first.url, ...ports.map((p) => `redis://:pw-s3cret@127.0.0.1:${p}`)],
      connectTimeout: 500,
      logger: recordingLogger(),
      instrumentation: false,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
    const message = (err as Error).message;
    expect(message).toMatch(/Only 1 of 3 Redlock nodes answered .* quorum of 2/);
    for (const p of ports) expect(message).toContain(`127.0.0.1:${p} (connection refused`);
    expect(message).not.toContain("pw-s3cret");
    expect(message).not.toContain("\n");
  });
});
