import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore, createSessionStore, type Logger } from "../src/index.js";
import { type RedisNode, startRedis } from "./support/redis.js";

describe("Redis with ACL users and passwords", () => {
  let node: RedisNode;
  beforeAll(async () => {
    node = await startRedis();
    // Passwords are set after start: the harness waits for readiness with a plain PING.
    const admin = new Redis(node.url);
    await admin.call("ACL", "SETUSER", "app", "on", ">app-s3cret", "~*", "&*", "+@all");
    await admin.config("SET", "requirepass", "default-s3cret");
    admin.disconnect();
  });
  afterAll(async () => {
    await node?.stop();
  });

  const url = (auth: string) => `redis://${auth}@${node.host}:${node.port}`;

  it("connects with a password and with user:password from the URL", async () => {
    for (const auth of [":default-s3cret", "app:app-s3cret"]) {
      const store = await createRedisSessionStore({ redisUrl: url(auth), instrumentation: false });
      await store.setSession("s", { auth: auth.split(":")[0] });
      expect(await store.getSession("s")).toEqual({ auth: auth.split(":")[0] });
      await store.disconnect();
    }
  });

  it("refuses a wrong password with ERR_BACKEND_UNAVAILABLE and never shows a password", async () => {
    const lines: string[] = [];
    const logger: Logger = {
      info: (m: string) => lines.push(m),
      warn: (m: string) => lines.push(m),
      error: (m: string) => lines.push(m),
    };
    const err = await createRedisSessionStore({
      redisUrl: url("app:wrong-pass"),
      connectTimeout: 500,
      logger,
    }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
    expect(String((err as Error).message)).not.toMatch(/wrong-pass|s3cret/);
    const store = await createSessionStore({
      redisUrl: url("app:wrong-pass"),
      connectTimeout: 500,
      logger,
    });
    expect(store.backend).toBe("memory");
    await store.disconnect();
    expect(lines.join("\n")).not.toMatch(/wrong-pass|s3cret/);
    expect(lines.join("\n")).toContain("app:***@");
  });
});
