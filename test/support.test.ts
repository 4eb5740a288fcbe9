import net from "node:net";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import {
  freePort,
  type RedisNode,
  startRedis,
  startRedisCluster,
  startRedisNodes,
  startRedisSentinel,
  waitForPing,
} from "./support/redis.js";

const teardown: Array<() => Promise<void>> = [];

afterAll(async () => {
  await Promise.all(teardown.map((stop) => stop()));
});

/** A client that fails at once instead of reconnecting, so "refused" is observable. */
function oneShotClient(node: RedisNode): Redis {
  return new Redis(node.port, node.host, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });
}

function connectRaw(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}

async function ping(node: RedisNode): Promise<string> {
  const client = oneShotClient(node);
  try {
    await client.connect();
    return await client.ping();
  } finally {
    client.disconnect();
  }
}

describe("test/support/redis", () => {
  it("freePort returns distinct ports, never 6379", async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    expect(new Set(ports).size).toBe(3);
    expect(ports).not.toContain(6379);
  });

  it("starts a node, survives kill and restart on the same port", async () => {
    const node = await startRedis();
    teardown.push(() => node.stop());
    expect(node.url).toBe(`redis://127.0.0.1:${node.port}`);
    expect(node.port).not.toBe(6379);
    const pid = node.pid;
    expect(pid).toBeTypeOf("number");
    expect(await ping(node)).toBe("PONG");

    await node.kill();
    await node.kill(); // idempotent
    expect(node.pid).toBeUndefined();
    await expect(connectRaw(node.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });

    await node.restart();
    expect(node.pid).toBeTypeOf("number");
    expect(node.pid).not.toBe(pid);
    expect(await ping(node)).toBe("PONG");
    await waitForPing(node.port, 1_000);

    await node.stop();
    await node.stop(); // idempotent
    expect(node.pid).toBeUndefined();
  });

  it("waitForPing times out on a port nobody listens on", async () => {
    const port = await freePort();
    await expect(waitForPing(port, 300)).rejects.toThrow(/within 300 ms/);
  });

  it("starts independent masters", async () => {
    const nodes = await startRedisNodes(3);
    teardown.push(() => Promise.all(nodes.map((n) => n.stop())).then(() => undefined));
    expect(new Set(nodes.map((n) => n.port)).size).toBe(3);
    for (const node of nodes) {
      const client = oneShotClient(node);
      await client.connect();
      const info = await client.info("replication");
      expect(info).toMatch(/role:master/);
      expect(info).toMatch(/connected_slaves:0/);
      client.disconnect();
    }
  });

  it("starts a cluster that serves keys in different slots", async () => {
    const t0 = Date.now();
    const cluster = await startRedisCluster();
    console.info(`cluster ready in ${Date.now() - t0} ms`);
    teardown.push(() => cluster.stop());
    expect(cluster.nodes).toHaveLength(6);
    expect(cluster.seeds).toHaveLength(6);

    const client = new Redis.Cluster(cluster.seeds, { enableOfflineQueue: true });
    try {
      const keys = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
      for (const key of keys) await client.set(key, `v-${key}`);
      for (const key of keys) expect(await client.get(key)).toBe(`v-${key}`);
      // The keys really are spread across more than one master.
      const owners = new Set<string>();
      for (const key of keys) {
        const slot = Number(await client.cluster("KEYSLOT", key));
        const ranges = await client.cluster("SLOTS");
        const range = ranges.find(([from, to]) => slot >= from && slot <= to);
        owners.add(String(range?.[2]?.[1]));
      }
      expect(owners.size).toBeGreaterThan(1);
    } finally {
      client.disconnect();
    }
  });

  it("starts a sentinel that reports the master", async () => {
    const t0 = Date.now();
    const sentinel = await startRedisSentinel();
    console.info(`sentinel ready in ${Date.now() - t0} ms`);
    teardown.push(() => sentinel.stop());
    expect(sentinel.masterName).toBe("mymaster");
    expect(sentinel.sentinels).toHaveLength(1);

    const probe = oneShotClient(sentinel.sentinels[0] as RedisNode);
    await probe.connect();
    const address = await probe.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster");
    probe.disconnect();
    expect(address).toEqual(["127.0.0.1", String(sentinel.master.port)]);

    const client = new Redis({
      sentinels: sentinel.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: sentinel.masterName,
      lazyConnect: true,
    });
    try {
      await client.connect();
      expect(await client.config("GET", "port")).toEqual(["port", String(sentinel.master.port)]);
      await client.set("k", "v");
      expect(await client.get("k")).toBe("v");
      const info = await client.info("replication");
      expect(info).toMatch(/role:master/);
      expect(info).toMatch(/connected_slaves:1/);
    } finally {
      client.disconnect();
    }
  });
});
