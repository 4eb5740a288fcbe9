import { type Command, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisSessionStore } from "../src/index.js";
import { DELETE_SCRIPT, SET_SCRIPT, TOUCH_SCRIPT } from "../src/stores/scripts.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("write fencing: a write that failed for its caller never lands after a later one", () => {
  let node: RedisNode;
  let raw: Redis;
  beforeAll(async () => {
    node = await startRedis();
    raw = new Redis(node.url);
  });
  afterAll(async () => {
    raw?.disconnect();
    await node?.stop();
  });

  it("the scripts refuse a write numbered below the writer's recorded floor", async () => {
    const key = "fence:{a}";
    const gone = "fence:{a}:gone";
    const set = (data: string, writer: string, seq: number, floor: number) =>
      raw.eval(SET_SCRIPT, 2, key, gone, data, 60_000, Date.now(), writer, seq, floor);
    expect(await set('"one"', "A", 5, 0)).toBe(1);
    expect(await raw.hkeys(key)).not.toContain("z:A");
    expect(await set('"two"', "A", 7, 7)).toBe(2);
    expect(await raw.hget(key, "z:A")).toBe("7");
    // An older write of A (sent before the failure that raised the floor) arrives now.
    expect(await set('"zombie"', "A", 6, 0)).toBe(-2);
    expect(await raw.hget(key, "d")).toBe('"two"');
    expect(await raw.eval(TOUCH_SCRIPT, 1, key, 1000, "A", 6, 0)).toBe(-2);
    expect(await raw.pttl(key)).toBeGreaterThan(50_000);
    expect(await raw.eval(DELETE_SCRIPT, 2, key, gone, "A", 6, 0, 60_000)).toBe(-2);
    // Another writer is not fenced by A's floor.
    expect(await set('"b"', "B", 1, 0)).toBe(3);
    expect(await raw.hget(key, "d")).toBe('"b"');
    // A touch of a missing record creates nothing, floor or not.
    expect(await raw.eval(TOUCH_SCRIPT, 1, "fence:{none}", 1000, "A", 9, 9)).toBe(0);
    expect(await raw.exists("fence:{none}")).toBe(0);
    // B fences its own older writes; then A deletes the record: both fences outlive it.
    expect(await set('"b2"', "B", 5, 5)).toBe(4);
    expect(await raw.eval(DELETE_SCRIPT, 2, key, gone, "A", 8, 7, 60_000)).toBe(1);
    expect(await raw.exists(key)).toBe(0);
    expect(await raw.hgetall(gone)).toEqual({ "z:A": "7", "z:B": "5" });
    expect(await raw.pttl(gone)).toBeGreaterThan(50_000);
    expect(await set('"zombie of A"', "A", 6, 0)).toBe(-2);
    expect(await set('"zombie of B"', "B", 4, 0)).toBe(-2);
    expect(await raw.exists(key)).toBe(0);
    // A newer write recreates the record and takes the fences over.
    expect(await set('"new"', "A", 9, 7)).toBe(1);
    expect(await raw.exists(gone)).toBe(0);
    expect(await raw.hget(key, "z:B")).toBe("5");
    expect(await set('"zombie of B"', "B", 4, 0)).toBe(-2);
    expect(await raw.hget(key, "d")).toBe('"new"');
    // Without any fence to keep, a delete leaves no tombstone.
    expect(await raw.eval(DELETE_SCRIPT, 2, "fence:{c}", "fence:{c}:gone", "C", 1, 0, 60_000)).toBe(
      0,
    );
    expect(await raw.exists("fence:{c}:gone")).toBe(0);
  });

  it("a set the client retried after its caller gave up does not overwrite the caller's next set", async () => {
    // A client passed in keeps its own queues and retries; here its first script call is held
    // back (as a Cluster redirection or a reconnect would) and sent after the caller gave up.
    const client = new Redis(node.url);
    const send = client.sendCommand.bind(client);
    let held: Promise<unknown> | undefined;
    client.sendCommand = ((command: Command, ...rest: unknown[]) => {
      if (held === undefined && /^eval/.test(command.name)) {
        held = sleep(800).then(() => send(command, ...(rest as [])));
        return command.promise;
      }
      return send(command, ...(rest as []));
    }) as typeof client.sendCommand;
    const store = await createRedisSessionStore({
      redis: client,
      commandTimeout: 300,
      instrumentation: false,
      logger: { info() {}, warn() {}, error() {} },
    });
    try {
      await expect(store.setSession("k", 1)).rejects.toMatchObject({
        code: "ERR_BACKEND_UNAVAILABLE",
      });
      await store.setSession("k", 2);
      await held;
      await sleep(50);
      expect(await store.getSession("k")).toBe(2);
      // The record keeps working for later writes.
      await store.setSession("k", 3);
      expect(await store.updateSession<number>("k", (n) => (n ?? 0) + 1)).toBe(4);
      expect(await store.getSession("k")).toBe(4);

      // A set that failed does not bring back the session a later delete removed.
      held = undefined;
      await expect(store.setSession("k", 5)).rejects.toMatchObject({
        code: "ERR_BACKEND_UNAVAILABLE",
      });
      expect(await store.deleteSession("k")).toBe(true);
      await held;
      await sleep(50);
      expect(await store.hasSession("k")).toBe(false);
      await store.setSession("k", 6);
      expect(await store.getSession("k")).toBe(6);
    } finally {
      await store.disconnect();
      client.disconnect();
    }
  });
});
