import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CountingRelay,
  commandStats,
  measureWork,
  processCpuSeconds,
  redisCpuSeconds,
} from "../bench/redis-work-probe.js";
import { type RedisNode, startRedis } from "./support/redis.js";

/** The counting of bench/mcp-redis-work.ts, on known sequences of commands. */
describe("Redis work probe", () => {
  let redis: RedisNode;
  let relay: CountingRelay;
  let app: Redis;
  let stats: Redis;
  let relayPort: number;

  beforeAll(async () => {
    redis = await startRedis();
    relay = new CountingRelay(redis.host, redis.port);
    relayPort = await relay.listen();
    app = new Redis({ host: "127.0.0.1", port: relayPort, lazyConnect: true });
    await app.connect();
    stats = new Redis({ host: redis.host, port: redis.port, lazyConnect: true });
    await stats.connect();
  });

  afterAll(async () => {
    app?.disconnect();
    stats?.disconnect();
    await relay?.close();
    await redis?.stop();
  });

  it("one command: one write, one round trip, one command executed", async () => {
    const work = await measureWork(relay, stats, async () => {
      await app.set("k", "v");
    });
    expect(work).toMatchObject({ writes: 1, roundTrips: 1, executedTotal: 1 });
    expect(work.executed).toEqual({ set: 1 });
    expect(work.sent.map((c) => [c.name, c.args[0]])).toEqual([["SET", "k"]]);
    // What follows the measurement is not in it.
    await app.get("k");
    expect(work.sent).toHaveLength(1);
  });

  it("a pipeline and a MULTI block are one round trip each, every command counted", async () => {
    const work = await measureWork(relay, stats, async () => {
      await app.pipeline().get("k").pexpire("k", 1000).hset("h", "f", "1").exec();
      await app.multi().get("k").del("h").exec();
    });
    expect(work.roundTrips).toBe(2);
    expect(work.executed).toEqual({ get: 2, pexpire: 1, hset: 1, multi: 1, exec: 1, del: 1 });
    expect(work.sent.map((c) => c.name)).toEqual([
      "GET",
      "PEXPIRE",
      "HSET",
      "MULTI",
      "GET",
      "DEL",
      "EXEC",
    ]);
  });

  it("commands issued in the same tick share a round trip; dependent ones do not", async () => {
    const together = await measureWork(relay, stats, async () => {
      await Promise.all([app.get("a"), app.get("b"), app.get("c")]);
    });
    expect(together.roundTrips).toBe(1);
    expect(together.executedTotal).toBe(3);
    const chained = await measureWork(relay, stats, async () => {
      const value = await app.get("k");
      await app.set("k2", value ?? "");
      await app.del("k2");
    });
    expect(chained.roundTrips).toBe(3);
    expect(chained.writes).toBe(3);
  });

  it("commands sent while another is in flight join its round trip", async () => {
    const other = new Redis({ host: "127.0.0.1", port: relayPort, lazyConnect: true });
    await other.connect();
    try {
      const work = await measureWork(relay, stats, async () => {
        await Promise.all([
          app.blpop("empty-list", 0.3),
          (async () => {
            await new Promise((resolve) => setTimeout(resolve, 50));
            await other.get("a");
            await other.set("b", "1");
          })(),
        ]);
      });
      expect(work.roundTrips).toBe(1);
      expect(work.writes).toBe(3);
      const next = await measureWork(relay, stats, async () => {
        await other.get("a");
        await other.get("b");
      });
      expect(next.roundTrips).toBe(2);
    } finally {
      other.disconnect();
    }
  });

  it("a script's own calls are executed commands, the script one command sent", async () => {
    const work = await measureWork(relay, stats, async () => {
      await app.eval("redis.call('SET', KEYS[1], 'x'); return redis.call('GET', KEYS[1])", 1, "s");
    });
    expect(work.sent.map((c) => c.name)).toEqual(["EVAL"]);
    expect(work.executed).toEqual({ eval: 1, set: 1, get: 1 });
    expect(work.roundTrips).toBe(1);
  });

  it("the probe's INFO calls are not counted, other clients' commands are", async () => {
    const before = await commandStats(stats);
    await stats.ping();
    const work = await measureWork(relay, stats, async () => {});
    expect(work.executedTotal).toBe(0);
    expect(work.roundTrips).toBe(0);
    expect((await commandStats(stats)).ping).toBe((before.ping ?? 0) + 1);
  });

  it("reads Redis's CPU time from /proc and from INFO cpu", async () => {
    const pid = redis.pid as number;
    const fromProc = await processCpuSeconds(pid);
    const fromInfo = await redisCpuSeconds(stats);
    expect(fromProc).toBeGreaterThanOrEqual(0);
    expect(fromInfo).toBeGreaterThanOrEqual(0);
    expect(Math.abs(fromProc - fromInfo)).toBeLessThan(1);
  });
});
