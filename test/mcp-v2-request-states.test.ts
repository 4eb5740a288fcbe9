import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRequestStates } from "../src/mcp/request-states.js";
import {
  createPeer,
  type PeerConfig,
  type PeerError,
  type PeerOps,
  redisAccess,
  spawnPeer,
} from "./fixtures/v2-tasks-harness.js";
import { eventually } from "./support/eventually.js";
import {
  type RedisClusterHandle,
  type RedisNode,
  startRedis,
  startRedisCluster,
} from "./support/redis.js";

const OLD_KEY = "old-key-0123456789abcdef0123456789abcdef";
const NEW_KEY = "new-key-0123456789abcdef0123456789abcdef";

/** A, B: two instances on the same keys; rotated: new key current, old key previous; retired: new key only. */
interface Instances {
  a: PeerOps;
  b: PeerOps;
  rotated: PeerOps;
  retired: PeerOps;
  close(): Promise<void>;
}

async function refusal(attempt: Promise<unknown>): Promise<string> {
  const err = (await attempt.then(
    () => undefined,
    (e: unknown) => e,
  )) as PeerError | undefined;
  expect(err, "the state was accepted").toBeDefined();
  expect(err?.code).toBe("ERR_INVALID_ARGUMENT");
  return err?.details?.reason as string;
}

/** Replaces the character at `index` of `text` by another one of the same alphabet. */
function flip(text: string, index: number): string {
  const at = index < 0 ? text.length + index : index;
  const c = text[at] === "A" ? "B" : "A";
  return text.slice(0, at) + c + text.slice(at + 1);
}

function requestStateSuite(name: string, setup: () => Promise<Instances>) {
  describe(name, () => {
    let env: Instances;
    beforeAll(async () => {
      env = await setup();
    });
    afterAll(async () => {
      await env?.close();
    });

    it("a state minted on A is consumed on B once; the replay is refused on A and on B", async () => {
      const wire = await env.a.mint({ step: 2, items: ["x"] }, { bind: "alice" });
      expect(await env.b.consume(wire, { bind: "alice" })).toEqual({ step: 2, items: ["x"] });
      expect(await refusal(env.b.consume(wire, { bind: "alice" }))).toBe("replay");
      expect(await refusal(env.a.consume(wire, { bind: "alice" }))).toBe("replay");
    });

    it("only one of many concurrent consumers on A and B wins", async () => {
      const wire = await env.a.mint({ n: 1 });
      const attempts = Array.from({ length: 20 }, (_, i) => (i % 2 ? env.a : env.b).consume(wire));
      const results = await Promise.allSettled(attempts);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    });

    it("a tampered, truncated, foreign-bound or garbage state is refused as invalid", async () => {
      const wire = await env.a.mint({ admin: false }, { bind: "alice" });
      const parts = wire.split(".");
      const forged = Buffer.from(JSON.stringify({ admin: true })).toString("base64url");
      const tampered = [
        [parts[0], parts[1], parts[2], parts[3], forged, parts[5]].join("."),
        flip(wire, -1),
        flip(wire, 8),
        [parts[0], parts[1], parts[2], String(Number(parts[3]) + 3600), parts[4], parts[5]].join(
          ".",
        ),
        wire.slice(0, -2),
        "not-a-state",
      ];
      for (const state of tampered) {
        expect(await refusal(env.b.consume(state, { bind: "alice" }))).toBe("invalid");
      }
      expect(await refusal(env.b.consume(wire, { bind: "mallory" }))).toBe("invalid");
      expect(await refusal(env.b.consume(wire))).toBe("invalid");
      // None of the refusals consumed it.
      expect(await env.b.consume(wire, { bind: "alice" })).toEqual({ admin: false });
    });

    it("rotation: a state minted under the previous key verifies; after retirement it does not", async () => {
      const before = await env.a.mint({ minted: "old" });
      const stillOld = await env.a.mint({ minted: "old" });
      expect(await env.rotated.consume(before)).toEqual({ minted: "old" });
      expect(await refusal(env.retired.consume(stillOld))).toBe("invalid");
      const after = await env.rotated.mint({ minted: "new" });
      expect(await env.retired.consume(after)).toEqual({ minted: "new" });
      expect(await refusal(env.a.consume(await env.rotated.mint({})))).toBe("invalid");
    });

    it("by reference: the client sees an id and a MAC only; consumed once across instances", async () => {
      const secret = { card: "4111-1111", note: "kept on the server" };
      const wire = await env.a.mint(secret, { byReference: true });
      expect(wire).not.toContain(Buffer.from(JSON.stringify(secret)).toString("base64url"));
      expect(wire.split(".")[4]).toBe("");
      expect(await env.b.consume(wire)).toEqual(secret);
      expect(await refusal(env.a.consume(wire))).toBe("replay");
      expect(await refusal(env.b.consume(wire))).toBe("replay");
      expect(await refusal(env.a.consume(flip(wire, 10)))).toBe("invalid");
    });

    it("an expired state is refused as expired", async () => {
      const wire = await env.a.mint({ late: true }, { ttl: 0.2 });
      await new Promise((resolve) => setTimeout(resolve, 1_300));
      expect(await refusal(env.b.consume(wire))).toBe("expired");
    });

    it("counts consumptions by outcome, with no id in a label", async () => {
      const wire = await env.a.mint({});
      await env.b.consume(wire);
      await refusal(env.b.consume(wire));
      const text = await env.b.metrics();
      expect(text).toMatch(/mcp_session_store_request_state_consumed_total\{outcome="ok"\} [1-9]/);
      expect(text).toMatch(
        /mcp_session_store_request_state_consumed_total\{outcome="replay"\} [1-9]/,
      );
      expect(text).toMatch(
        /mcp_session_store_request_state_consumed_total\{outcome="invalid"\} [1-9]/,
      );
      expect(text).not.toContain(wire.split(".")[2]);
    });
  });
}

const base = (overrides: Partial<PeerConfig> = {}): PeerConfig => ({
  prefix: "t:",
  keys: { current: OLD_KEY },
  ...overrides,
});
const rotatedKeys = { current: NEW_KEY, previous: [OLD_KEY] };

requestStateSuite("request states in memory (one process)", async () => {
  // Memory is one process's state: A and B are the same instance, the key sets are views on it.
  const a = await createPeer(base());
  return {
    a,
    b: a,
    rotated: await createPeer(base({ keys: rotatedKeys })),
    retired: await createPeer(base({ keys: { current: NEW_KEY } })),
    close: () => a.close(),
  };
});

describe("request states on Redis", () => {
  let redis: RedisNode;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  requestStateSuite("two processes A and B on one Redis", async () => {
    const config = base({ redisUrl: redis.url });
    const peers = await Promise.all([
      spawnPeer(config),
      spawnPeer(config),
      spawnPeer({ ...config, keys: rotatedKeys }),
      spawnPeer({ ...config, keys: { current: NEW_KEY } }),
    ]);
    const [a, b, rotated, retired] = peers as [PeerOps, PeerOps, PeerOps, PeerOps];
    return {
      a,
      b,
      rotated,
      retired,
      close: async () => {
        await Promise.all(peers.map((p) => p.close()));
      },
    };
  });
});

describe("request states on Redis Cluster", () => {
  let cluster: RedisClusterHandle;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  requestStateSuite("two instances on one Cluster (one process)", async () => {
    const config = base({ cluster: cluster.seeds });
    const peers = [
      await createPeer(config),
      await createPeer(config),
      await createPeer({ ...config, keys: rotatedKeys }),
      await createPeer({ ...config, keys: { current: NEW_KEY } }),
    ];
    const [a, b, rotated, retired] = peers as [PeerOps, PeerOps, PeerOps, PeerOps];
    return {
      a,
      b,
      rotated,
      retired,
      close: async () => {
        await Promise.all(peers.map((p) => p.close()));
      },
    };
  });
});

describe("request states when Redis does not answer", () => {
  it("fails closed: consume and by-reference mint reject with ERR_BACKEND_UNAVAILABLE", async () => {
    const node = await startRedis();
    const { access, close } = redisAccess(node.url);
    const warnings: string[] = [];
    const states = createRequestStates({
      redis: { ...access, commandTimeout: 300 },
      prefix: "t:",
      registry: new Registry(),
      logger: { info() {}, error() {}, warn: (line: string) => warnings.push(line) },
      keys: { current: OLD_KEY },
    });
    try {
      const wire = await states.mint({ n: 1 });
      await node.kill();
      await expect(states.consume(wire)).rejects.toMatchObject({ code: "ERR_BACKEND_UNAVAILABLE" });
      expect(warnings).toEqual([expect.stringMatching(/^requestState not checked: Redis/)]);
      await expect(states.mint({}, { byReference: true })).rejects.toMatchObject({
        code: "ERR_BACKEND_UNAVAILABLE",
      });
      await node.restart();
      // A command in flight may still land after the timeout: the state is good at most once more.
      const retried = await eventually(async () => {
        const reason = await states.consume(wire).then(
          () => "ok",
          (err: PeerError) => err.details?.reason ?? err.code,
        );
        // Until the client has reconnected, the answer is still ERR_BACKEND_UNAVAILABLE.
        expect(reason).not.toBe("ERR_BACKEND_UNAVAILABLE");
        return reason;
      });
      expect(["ok", "replay"]).toContain(retried);
      await expect(states.consume(wire)).rejects.toMatchObject({ details: { reason: "replay" } });
    } finally {
      await states.close();
      close();
      await node.stop();
    }
  });
});

describe("request states: options", () => {
  const options = (keys: { current: unknown; previous?: unknown }) => ({
    redis: undefined,
    prefix: "t:",
    registry: new Registry(),
    logger: console,
    keys: keys as { current: string },
  });

  it("refuses a key shorter than 32 bytes, naming the field", () => {
    expect(() => createRequestStates(options({ current: "short" }))).toThrow(/keys\.current/);
    expect(() => createRequestStates(options({ current: OLD_KEY, previous: ["x"] }))).toThrow(
      /keys\.previous\[0\]/,
    );
  });

  it("reuses the counter when a second instance shares the registry", async () => {
    const registry = new Registry();
    const first = createRequestStates({ ...options({ current: OLD_KEY }), registry });
    const second = createRequestStates({ ...options({ current: OLD_KEY }), registry });
    await second.consume(await first.mint({ ok: true }));
    expect(
      await registry.getSingleMetricAsString("mcp_session_store_request_state_consumed_total"),
    ).toContain('outcome="ok"} 1');
    await first.close();
    await expect(first.mint({})).rejects.toMatchObject({ code: "ERR_STORE_CLOSED" });
    await second.close();
  });

  it("byReference: true keeps every payload out of the wire", async () => {
    const states = createRequestStates({ ...options({ current: OLD_KEY }), byReference: true });
    const wire = await states.mint({ big: "x".repeat(100) });
    expect(wire).not.toContain("eHh4");
    expect(await states.consume(wire)).toEqual({ big: "x".repeat(100) });
    await states.close();
  });
});
