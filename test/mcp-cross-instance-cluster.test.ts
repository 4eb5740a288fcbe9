/**
 * The cross-instance mechanism on a Redis Cluster (3 masters): two handlers in this process
 * with their own connections, answers routed from one to the other, a standalone message raised
 * on one reaching the GET stream held by the other, both over sharded pub/sub.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAskingClient } from "./fixtures/asking-clients.js";
import { type InProcess, routed, startInProcess } from "./fixtures/mcp-helpers.js";
import { type RedisClusterHandle, startRedisCluster } from "./support/redis.js";

describe("cross-instance answers and pushes on a Redis Cluster", () => {
  let cluster: RedisClusterHandle;
  let x: InProcess;
  let y: InProcess;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
    const options = {
      redis: { clusterNodes: cluster.seeds },
      prefix: "xc:",
      fallback: "error" as const,
    };
    x = await startInProcess(options, {}, "X");
    y = await startInProcess(options, {}, "Y");
  }, 60_000);

  afterAll(async () => {
    await x?.close();
    await y?.close();
    await cluster?.stop();
  });

  it("routes answers and pushes standalone messages across the two handlers", {
    timeout: 30_000,
  }, async () => {
    // Requests to X; the GET stream and the client's answers to Y.
    const fetchImpl = routed(({ httpMethod, rpcMethod }) =>
      httpMethod === "GET" || rpcMethod === undefined ? y.url : x.url,
    );
    const client = await connectAskingClient("v2", x.url, fetchImpl);
    try {
      for (let i = 0; i < 5; i++) {
        expect(await client.call("ask", { what: ["sampling", "roots"], tag: `c${i}` })).toBe(
          `X|sampled:c${i}|file:///roots/client-v2`,
        );
      }
      for (let i = 0; !client.notifications.includes(`notifications/message up-${i - 1}`); i++) {
        if (i > 100) throw new Error("the standalone stream never got the message");
        expect(await client.call("raise", { kind: "log", tag: `up-${i}` })).toBe("X|raised");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const metrics = await y.services.registry.metrics();
      expect(metrics).toMatch(/mcp_session_store_mcp_answers_routed_total 10/);
      expect(metrics).toMatch(
        /mcp_session_store_mcp_stream_messages_pushed_total\{stream="standalone"\} [1-9]/,
      );
    } finally {
      await client.close();
    }
  });
});
