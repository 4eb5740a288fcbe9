/**
 * The SDK v2 legacy bridge (`createLegacyHttpHandler`): 2025-era sessions on SDK v2's
 * `WebStandardStreamableHTTPServerTransport`, served by two processes on one Redis behind a
 * round robin without affinity, with an SDK v1 client and an SDK v2 client (2025 mode): shared
 * sessions, server-to-client answers routed to the instance that asked, standalone messages
 * pushed to the instance holding the GET stream, resumability across instances, DELETE
 * everywhere. The same handler core as `mcp-cross-instance.test.ts` runs for SDK v1.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AskingClient, connectAskingClient } from "./fixtures/asking-clients.js";
import {
  connectClient,
  type Instance,
  post,
  rawInitialize,
  roundRobin,
  routed,
  spawnInstance,
  textOf,
} from "./fixtures/mcp-helpers.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const PREFIX = "mcpv2l:";

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe("SDK v2 legacy bridge: 2025-era sessions across two instances", () => {
  let redis: RedisNode;
  let a: Instance;
  let b: Instance;
  const clients: AskingClient[] = [];
  const env = () => ({ REDIS_URL: redis.url, PREFIX });

  beforeAll(async () => {
    redis = await startRedis();
    [a, b] = await Promise.all([
      spawnInstance({ ...env(), INSTANCE: "A" }, "mcp-server-v2.ts"),
      spawnInstance({ ...env(), INSTANCE: "B" }, "mcp-server-v2.ts"),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  for (const sdk of ["v1", "v2"] as const) {
    it(`answers to sampling, elicitation and roots reach the tool that asked (SDK ${sdk} client)`, {
      timeout: 60_000,
    }, async () => {
      const rr = roundRobin(() => [a.url, b.url]);
      const client = await connectAskingClient(sdk, a.url, rr.fetch);
      clients.push(client);
      const cycle = [["sampling"], ["elicitation"], ["roots"], ["elicitation-url", "ping"]];
      const ran = new Set<string>();
      for (let i = 0; i < 12; i++) {
        const what = cycle[i % cycle.length] as string[];
        const tag = `${sdk}-${i}`;
        const [instance, ...answers] = (await client.call("ask", { what, tag })).split("|");
        ran.add(instance as string);
        expect(answers).toEqual(
          what.map((kind) =>
            kind === "sampling"
              ? `sampled:${tag}`
              : kind === "elicitation"
                ? `accept:elicited:${tag}`
                : kind === "roots"
                  ? `file:///roots/client-${sdk}`
                  : kind === "elicitation-url"
                    ? "url-accept"
                    : "pong",
          ),
        );
      }
      expect([...ran].sort()).toEqual(["A", "B"]);
      expect(await client.call("ask", { what: ["unknown-method"], tag: "e" })).toMatch(
        /^[AB]\|error:-32601$/,
      );
      await client.close();
    });

    it(`messages raised on A reach the GET stream on B (SDK ${sdk} client)`, {
      timeout: 30_000,
    }, async () => {
      const fetchImpl = routed(({ httpMethod, rpcMethod }) =>
        httpMethod === "GET" || (httpMethod === "POST" && rpcMethod === undefined) ? b.url : a.url,
      );
      const client = await connectAskingClient(sdk, a.url, fetchImpl);
      clients.push(client);
      // Keeps raising until one arrives: the GET stream (on B) is open.
      await waitFor("the standalone stream", async () => {
        await client.call("raise", { kind: "log", tag: "ready" });
        await new Promise((resolve) => setTimeout(resolve, 50));
        return client.notifications.includes("notifications/message ready");
      });
      expect(await client.call("raise", { kind: "resource_updated", tag: "r1" })).toBe("A|raised");
      await waitFor("the pushed notification", () =>
        client.notifications.includes("notifications/resources/updated test://r1"),
      );
      // A request outside any request goes on the GET stream (B); its answer is routed to A.
      expect(await client.call("ask-standalone", {})).toBe(`A|file:///roots/client-${sdk}`);
      await client.close();
    });
  }

  it("any instance serves the session, a dropped stream resumes on the other one", {
    timeout: 30_000,
  }, async () => {
    const rr = roundRobin(() => [a.url, b.url]);
    const { client } = await connectClient(a.url, { fetch: rr.fetch });
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      seen.add(textOf(await client.callTool({ name: "whoami", arguments: {} })));
    }
    expect([...seen].sort()).toEqual(["A", "B"]);
    const progress: number[] = [];
    const result = await client.callTool(
      { name: "steps", arguments: { count: 6, closeAfter: 2 } },
      undefined,
      { onprogress: (p) => void progress.push(p.progress), timeout: 20_000 },
    );
    expect(textOf(result)).toMatch(/^done 6 on [AB]$/);
    expect(progress).toEqual([1, 2, 3, 4, 5, 6]);
    await client.close();
  });

  it("DELETE on one instance ends the session on both; a foreign principal gets 404", async () => {
    const principal = { "x-test-principal": "alice" };
    const id = await rawInitialize(a.url, principal);
    const ping = JSON.stringify({ jsonrpc: "2.0", id: 2, method: "ping" });
    const headers = { ...principal, "mcp-session-id": id, "mcp-protocol-version": "2025-11-25" };
    expect((await post(b.url, ping, headers)).status).toBe(200);
    expect((await post(b.url, ping, { ...headers, "x-test-principal": "mallory" })).status).toBe(
      404,
    );
    const deleted = await fetch(b.url, { method: "DELETE", headers });
    expect(deleted.status).toBe(200);
    expect((await post(a.url, ping, headers)).status).toBe(404);
  });

  it("bad options are refused with ERR_INVALID_ARGUMENT", async () => {
    const { createLegacyHttpHandler } = await import("../src/mcp/v2/index.js");
    expect(() =>
      createLegacyHttpHandler({ services: undefined as never, createServer: () => ({}) as never }),
    ).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }));
  });
});
