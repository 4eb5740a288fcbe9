/**
 * Server-to-client traffic of 2025-era sessions across two instances (separate processes, one
 * Redis, a round robin without affinity): answers to sampling, elicitation and roots reach the
 * tool that asked wherever they are POSTed; standalone notifications and requests raised on
 * one instance reach the GET stream held by the other; failures stay bounded and counted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AskingClient, connectAskingClient, type Sdk } from "./fixtures/asking-clients.js";
import { type Instance, roundRobin, routed, spawnInstance } from "./fixtures/mcp-helpers.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const PREFIX = "mcpx:";

/** Sum of the samples of `name` whose labels contain `labels`. */
async function metric(instance: Instance, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(instance.url.replace("/mcp", "/metrics"))).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith(" ") || rest.startsWith("{"))) continue;
    if (labels !== "" && !rest.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** What each kind of question returns once the client answered it. */
function expected(kind: string, tag: string, sdk: Sdk): string {
  switch (kind) {
    case "sampling":
      return `sampled:${tag}`;
    case "elicitation":
      return `accept:elicited:${tag}`;
    case "elicitation-url":
      return "url-accept";
    case "roots":
      return `file:///roots/client-${sdk}`;
    default:
      return "pong";
  }
}

/** Keeps raising log notifications until one arrives: the client's GET stream is open. */
async function waitForStream(client: AskingClient): Promise<void> {
  for (let i = 0; i < 100; i++) {
    await client.call("raise", { kind: "log", tag: `ready-${i}` });
    const deadline = Date.now() + 100;
    while (Date.now() < deadline) {
      if (client.notifications.includes(`notifications/message ready-${i}`)) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  throw new Error("the standalone stream never opened");
}

describe("2025-era server-to-client traffic across two instances", () => {
  let redis: RedisNode;
  let a: Instance;
  let b: Instance;
  const clients: AskingClient[] = [];
  const env = () => ({ REDIS_URL: redis.url, PREFIX });

  beforeAll(async () => {
    redis = await startRedis();
    [a, b] = await Promise.all([
      spawnInstance({ ...env(), INSTANCE: "A" }),
      spawnInstance({ ...env(), INSTANCE: "B" }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  for (const sdk of ["v1", "v2"] as const) {
    it(`answers reach the tool that asked, through a round robin (SDK ${sdk} client)`, {
      timeout: 60_000,
    }, async () => {
      const before = {
        routedA: await metric(a, "mcp_session_store_mcp_answers_routed_total"),
        routedB: await metric(b, "mcp_session_store_mcp_answers_routed_total"),
        droppedA: await metric(a, "mcp_session_store_mcp_answers_dropped_total"),
        droppedB: await metric(b, "mcp_session_store_mcp_answers_dropped_total"),
      };
      const rr = roundRobin(() => [a.url, b.url]);
      const client = await connectAskingClient(sdk, a.url, rr.fetch);
      clients.push(client);
      // 2 + 2 + 2 + 3 + 2 POSTs per cycle: an odd count, so the round robin sends tool calls
      // and answers to both instances in turn.
      const cycle = [
        ["sampling"],
        ["elicitation"],
        ["roots"],
        ["elicitation-url", "sampling"],
        ["ping"],
      ];
      const ran = new Set<string>();
      for (let i = 0; i < 50; i++) {
        const what = cycle[i % cycle.length] as string[];
        const tag = `${sdk}-${i}`;
        const text = await client.call("ask", { what, tag });
        const [instance, ...answers] = text.split("|");
        ran.add(instance as string);
        expect(answers).toEqual(what.map((kind) => expected(kind, tag, sdk)));
      }
      expect([...ran].sort()).toEqual(["A", "B"]);
      // An error answer travels the same way.
      expect(await client.call("ask", { what: ["unknown-method", "roots"], tag: "e" })).toMatch(
        new RegExp(`^[AB]\\|error:-32601\\|file:///roots/client-${sdk}$`),
      );
      expect(await metric(a, "mcp_session_store_mcp_answers_routed_total")).toBeGreaterThan(
        before.routedA,
      );
      expect(await metric(b, "mcp_session_store_mcp_answers_routed_total")).toBeGreaterThan(
        before.routedB,
      );
      expect(await metric(a, "mcp_session_store_mcp_answers_dropped_total")).toBe(before.droppedA);
      expect(await metric(b, "mcp_session_store_mcp_answers_dropped_total")).toBe(before.droppedB);
      expect(
        await metric(
          a,
          "mcp_session_store_mcp_cross_instance_delivery_seconds_count",
          'kind="answer"',
        ),
      ).toBeGreaterThan(0);
      await client.close();
    });

    it(`messages raised on A reach the GET stream on B (SDK ${sdk} client)`, {
      timeout: 30_000,
    }, async () => {
      const pushedB = await metric(b, "mcp_session_store_mcp_stream_messages_pushed_total");
      // Requests and notifications to A, the GET stream and the client's answers to B.
      const fetchImpl = routed(({ httpMethod, rpcMethod }) =>
        httpMethod === "GET" || (httpMethod === "POST" && rpcMethod === undefined) ? b.url : a.url,
      );
      const client = await connectAskingClient(sdk, a.url, fetchImpl);
      clients.push(client);
      await waitForStream(client);
      expect(await client.call("raise", { kind: "list_changed", tag: "x" })).toBe("A|raised");
      expect(await client.call("raise", { kind: "resource_updated", tag: "r1" })).toBe("A|raised");
      expect(await client.call("raise", { kind: "log", tag: "hello" })).toBe("A|raised");
      await waitFor("the three notifications", () =>
        [
          "notifications/tools/list_changed",
          "notifications/resources/updated test://r1",
          "notifications/message hello",
        ].every((n) => client.notifications.includes(n)),
      );
      // A request without a related request goes on the GET stream (on B); its answer is POSTed
      // to B too, and routed to A.
      expect(await client.call("ask-standalone", {})).toBe(`A|file:///roots/client-${sdk}`);
      expect(await metric(b, "mcp_session_store_mcp_stream_messages_pushed_total")).toBeGreaterThan(
        pushedB,
      );
      await client.close();
    });
  }

  it("B dies holding the GET stream: the client resumes on A and misses nothing", {
    timeout: 60_000,
  }, async () => {
    let bAlive = true;
    const fetchImpl = routed(({ httpMethod }) => (httpMethod === "GET" && bAlive ? b.url : a.url));
    const client = await connectAskingClient("v1", a.url, fetchImpl);
    clients.push(client);
    await waitForStream(client);
    const tags = Array.from({ length: 10 }, (_, i) => `k${i}`);
    for (const tag of tags.slice(0, 5)) await client.call("raise", { kind: "log", tag });
    await waitFor("the first five", () =>
      tags.slice(0, 5).every((t) => client.notifications.includes(`notifications/message ${t}`)),
    );
    bAlive = false;
    await b.kill();
    // Raised while the client has no stream: stored, then replayed on the resumed stream.
    for (const tag of tags.slice(5)) await client.call("raise", { kind: "log", tag });
    await waitFor("the last five", () =>
      tags.every((t) => client.notifications.includes(`notifications/message ${t}`)),
    );
    const logged = client.notifications.filter((n) => /^notifications\/message k\d$/.test(n));
    expect(logged).toEqual(tags.map((t) => `notifications/message ${t}`));
    await client.close();
    b = await spawnInstance({ ...env(), INSTANCE: "B" });
  });

  it("A dies while a sampling request waits: the answer is dropped and counted, B serves on", {
    timeout: 60_000,
  }, async () => {
    const ownerGone = await metric(
      b,
      "mcp_session_store_mcp_answers_dropped_total",
      'reason="owner_gone"',
    );
    let aAlive = true;
    // Tool calls to A while it lives, everything else to B.
    const fetchImpl = routed(({ httpMethod, rpcMethod }) =>
      aAlive && httpMethod === "POST" && rpcMethod === "tools/call" ? a.url : b.url,
    );
    const client = await connectAskingClient("v1", b.url, fetchImpl);
    clients.push(client);
    const waiting = client.call("ask", { what: ["sampling"], tag: "hold-1" }, 3000).then(
      () => "answered",
      () => "failed",
    );
    await client.held;
    aAlive = false;
    await a.kill();
    client.release();
    await waitFor(
      "the dropped answer",
      async () =>
        (await metric(b, "mcp_session_store_mcp_answers_dropped_total", 'reason="owner_gone"')) >
        ownerGone,
    );
    expect(await waiting).toBe("failed");
    expect(await client.call("ask", { what: ["sampling"], tag: "after" })).toBe("B|sampled:after");
    await client.close();
    a = await spawnInstance({ ...env(), INSTANCE: "A" });
  });
});
