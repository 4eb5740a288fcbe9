import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createMemorySessionStore,
  createRedisSessionStore,
  createSessionStore,
  type SessionStore,
} from "../src/index.js";
import { type RedisNode, startRedis } from "./support/redis.js";

function badInput(make: () => Promise<SessionStore>): void {
  let store: SessionStore;
  const original = { keep: "me", n: 1 };

  beforeAll(async () => {
    store = await make();
    await store.setSession("existing", original, { ttl: 600 });
  });
  afterAll(async () => {
    await store.disconnect();
  });

  /** Runs a bad call, checks its code, then checks nothing stored changed. */
  async function refused(call: () => Promise<unknown>, code: string): Promise<void> {
    await expect(call()).rejects.toMatchObject({ name: "SessionStoreError", code });
    expect(await store.getSession("existing")).toEqual(original);
    const ttl = (await store.getSessionTtl("existing")) as number;
    expect(ttl).toBeGreaterThan(590);
    expect(ttl).toBeLessThanOrEqual(600);
  }

  const badIds: Array<[string, unknown]> = [
    ["empty", ""],
    ["513 characters", "x".repeat(513)],
    ["a space", "a b"],
    ["a newline", "a\nb"],
    ["a NUL", "a\u0000b"],
    ["DEL (0x7f)", "a\u007fb"],
    ["non-ASCII", "sessión"],
    ["a number", 42],
    ["undefined", undefined],
  ];
  for (const [what, id] of badIds) {
    it(`refuses an id with ${what} on every method`, async () => {
      const bad = id as string;
      const code = "ERR_INVALID_SESSION_ID";
      await refused(() => store.getSession(bad), code);
      await refused(() => store.setSession(bad, 1), code);
      await refused(() => store.updateSession(bad, () => 1), code);
      await refused(() => store.deleteSession(bad), code);
      await refused(() => store.hasSession(bad), code);
      await refused(() => store.touchSession(bad), code);
      await refused(() => store.getSessionTtl(bad), code);
      await refused(() => store.acquireLock(bad), code);
    });
  }

  it("names the id only by a hash in errors", async () => {
    const err = await store.getSession("secret session id").catch((e: Error) => e);
    expect((err as Error).message).not.toContain("secret");
  });

  const cycle: Record<string, unknown> = { a: 1 };
  cycle.self = cycle;
  const notJson: Array<[string, unknown]> = [
    ["a function", () => 1],
    ["a nested function", { f: () => 1 }],
    ["a BigInt", 10n],
    ["a nested BigInt", { n: [1n] }],
    ["a symbol", Symbol("s")],
    ["a cycle", cycle],
    ["NaN", Number.NaN],
    ["a nested Infinity", { x: Number.POSITIVE_INFINITY }],
    ["undefined", undefined],
    ["undefined in an array", [1, undefined]],
    ["a Date", new Date(0)],
    ["a Map", new Map([[1, 2]])],
  ];
  for (const [what, value] of notJson) {
    it(`refuses ${what} with ERR_SERIALIZATION, on set and update`, async () => {
      await refused(() => store.setSession("existing", value), "ERR_SERIALIZATION");
      await refused(() => store.updateSession("existing", () => value), "ERR_SERIALIZATION");
    });
  }

  it("refuses a payload over maxPayloadBytes, counted in UTF-8 bytes", async () => {
    await refused(
      () => store.setSession("existing", "x".repeat(1_048_577)),
      "ERR_PAYLOAD_TOO_LARGE",
    );
    // 1048574 ASCII characters plus two quotes is exactly the default limit.
    await store.setSession("edge", "x".repeat(1_048_574));
    expect(((await store.getSession("edge")) as string).length).toBe(1_048_574);
    // 524288 two-byte characters are 1048578 bytes with the quotes, though only 524290 UTF-16 units.
    await refused(() => store.setSession("existing", "é".repeat(524_288)), "ERR_PAYLOAD_TOO_LARGE");
  });

  const badTtls: Array<[string, unknown]> = [
    ["0", 0],
    ["-1", -1],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["2 years", 2 * 365 * 24 * 3600],
    ["a string", "60"],
  ];
  for (const [what, ttl] of badTtls) {
    it(`refuses a TTL of ${what} with ERR_INVALID_ARGUMENT`, async () => {
      const t = ttl as number;
      await refused(() => store.setSession("existing", 2, { ttl: t }), "ERR_INVALID_ARGUMENT");
      await refused(
        () => store.updateSession("existing", () => 2, { ttl: t }),
        "ERR_INVALID_ARGUMENT",
      );
      await refused(() => store.touchSession("existing", t), "ERR_INVALID_ARGUMENT");
    });
  }

  it("refuses bad lock options and a non-function update", async () => {
    await refused(() => store.acquireLock("existing", { ttl: 0 }), "ERR_INVALID_ARGUMENT");
    await refused(() => store.acquireLock("existing", { waitTimeout: -1 }), "ERR_INVALID_ARGUMENT");
    await refused(
      () => store.updateSession("existing", "nope" as unknown as () => number),
      "ERR_INVALID_ARGUMENT",
    );
  });
}

describe("bad input, memory", () => {
  badInput(async () => createMemorySessionStore({ instrumentation: false }));
});

describe("bad input, redis", () => {
  let node: RedisNode;
  beforeAll(async () => {
    node = await startRedis();
  });
  afterAll(async () => {
    await node?.stop();
  });
  badInput(() => createRedisSessionStore({ redisUrl: node.url, instrumentation: false }));
});

describe("bad options", () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ["defaultTtl", { defaultTtl: 0 }],
    ["defaultTtl", { defaultTtl: Number.NaN }],
    ["defaultTtl", { defaultTtl: 2 * 365 * 24 * 3600 }],
    ["lockTimeout", { lockTimeout: -5 }],
    ["connectTimeout", { connectTimeout: 0 }],
    ["commandTimeout", { commandTimeout: Number.POSITIVE_INFINITY }],
    ["maxPayloadBytes", { maxPayloadBytes: 0 }],
    ["prefix", { prefix: "has{brace}" }],
    ["prefix", { prefix: 5 }],
    ["fallback", { fallback: "maybe" }],
    ["logger", { logger: { info() {} } }],
    ["lockNodes", { lockNodes: [] }],
  ];
  for (const [option, options] of cases) {
    it(`throws ERR_INVALID_ARGUMENT naming ${option} for ${JSON.stringify(options)}`, async () => {
      const err = (() => {
        try {
          createMemorySessionStore(options);
        } catch (e) {
          return e as Error & { code: string };
        }
        return undefined;
      })();
      expect(err?.code).toBe("ERR_INVALID_ARGUMENT");
      expect(err?.message).toContain(option);
      await expect(createSessionStore(options)).rejects.toMatchObject({
        code: "ERR_INVALID_ARGUMENT",
      });
    });
  }

  it("checks redisUrl only where Redis is used: never for a memory store", async () => {
    const options = { redisUrl: "http://localhost:6379", instrumentation: false as const };
    createMemorySessionStore(options);
    const memory = await createSessionStore({ ...options, preferMemory: true });
    expect(memory.backend).toBe("memory");
    await memory.disconnect();
    for (const create of [createSessionStore, createRedisSessionStore]) {
      const err = await create(options).catch((e: Error & { code: string }) => e);
      expect(err).toMatchObject({ code: "ERR_INVALID_ARGUMENT" });
      expect((err as Error).message).toContain("redisUrl");
    }
  });

  it("never puts a password in an error", async () => {
    const err = await createRedisSessionStore({
      redisUrl: "redis://user:hunter2@127.0.0.1:1",
      connectTimeout: 200,
    }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
    expect((err as Error).message).not.toContain("hunter2");
    expect((err as Error).message).toContain("***");
  });
});
