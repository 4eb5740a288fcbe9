/**
 * Both protocol eras on the reference server's one `/mcp`, with real clients, on one instance and
 * through nginx round robin over two instances on one Redis: an SDK v2 client in `auto` mode and
 * one pinned to 2026-07-28 call every demo tool (handles, multi round-trip, tasks); the SDK v1
 * client still gets shared 2025-era sessions; a task created on one instance is read on the
 * other; a replayed multi round-trip state is refused on every instance.
 */
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NginxHandle, startNginx } from "./support/nginx.js";
import { type RedisNode, startRedis } from "./support/redis.js";
import { type ServerProcess, startServer } from "./support/server.js";

const STATE_KEY = "eras-test-request-state-key-0123456789abcdef";
const TASKS = "io.modelcontextprotocol/tasks";

type Mode = "auto" | { pin: string };

function structured(result: unknown): Record<string, unknown> {
  const content = (result as { content?: Array<{ text?: string }> }).content;
  return JSON.parse(content?.[0]?.text ?? "{}") as Record<string, unknown>;
}

async function modernClient(url: string, mode: Mode): Promise<Client> {
  const client = new Client(
    { name: "eras-test", version: "1.0.0" },
    { versionNegotiation: { mode } as never, capabilities: { elicitation: { form: {} } } },
  );
  client.setRequestHandler("elicitation/create", async () => ({
    action: "accept",
    content: { ok: true },
  }));
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

/** Calls every demo tool; returns what they answered. */
async function everyDemoTool(client: Client) {
  const call = async (name: string, args: Record<string, unknown>) =>
    structured(await client.callTool({ name, arguments: args }));
  const first = await call("counter_increment", {});
  const second = await call("counter_increment", { counter: first.counter });
  const put = await call("notes_put", { key: "k", value: "v" });
  await call("notes_put", { key: "k2", value: "v2", notebook: put.notebook });
  const notes = await call("notes_get", { notebook: put.notebook });
  const slow = await call("slow_task", { steps: 2, stepMs: 5 });
  const slowAsync = await call("slow_task_async", { steps: 2, stepMs: 5 });
  const charge = await call("confirm_charge", { amount: 7 });
  return { first, second, notes, slow, slowAsync, charge };
}

let nextId = 1;
/** One raw 2026-07-28 request (per-request `_meta`, no session), as a bare client sends it. */
async function rpc(url: string, method: string, params: Record<string, unknown>) {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": method,
      ...(typeof params.name === "string" ? { "mcp-name": params.name } : {}),
      ...(typeof params.taskId === "string" ? { "mcp-name": params.taskId } : {}),
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: nextId++,
      method,
      params: {
        ...params,
        _meta: {
          "io.modelcontextprotocol/protocolVersion": "2026-07-28",
          "io.modelcontextprotocol/clientInfo": { name: "eras-test", version: "1.0.0" },
          "io.modelcontextprotocol/clientCapabilities": {
            elicitation: { form: {} },
            extensions: { [TASKS]: {} },
          },
        },
      },
    }),
  });
  const text = await response.text();
  const json = text.startsWith("{") ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? "{}");
  return JSON.parse(json) as { result?: Record<string, unknown>; error?: { code: number } };
}

describe("reference server: both protocol eras on /mcp", () => {
  let single: ServerProcess | undefined;
  let redis: RedisNode | undefined;
  const pair: ServerProcess[] = [];
  let nginx: NginxHandle | undefined;
  const targets: Array<[string, () => string]> = [
    ["one instance", () => (single as ServerProcess).mcpUrl],
    ["two instances behind nginx", () => `${(nginx as NginxHandle).url}/mcp`],
  ];

  beforeAll(async () => {
    single = await startServer({ env: { REQUEST_STATE_KEY: STATE_KEY } });
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, KEY_PREFIX: "eras:", REQUEST_STATE_KEY: STATE_KEY };
    pair.push(await startServer({ env }), await startServer({ env }));
    nginx = await startNginx(pair.map((s) => s.port));
  }, 180_000);

  afterAll(async () => {
    await nginx?.stop();
    await Promise.all([single?.stop(), ...pair.map((s) => s.stop())]);
    await redis?.stop();
  });

  for (const [setup, urlOf] of targets) {
    for (const mode of ["auto", { pin: "2026-07-28" }] as Mode[]) {
      it(`SDK v2 client (${JSON.stringify(mode)}) calls every demo tool, ${setup}`, async () => {
        const client = await modernClient(urlOf(), mode);
        try {
          expect(client.getProtocolEra()).toBe("modern");
          expect(client.getNegotiatedProtocolVersion()).toBe("2026-07-28");
          const r = await everyDemoTool(client);
          expect(r.first.value).toBe(1);
          expect(r.second).toMatchObject({ counter: r.first.counter, value: 2 });
          expect(r.notes.notes).toEqual({ k: "v", k2: "v2" });
          expect(r.slow).toMatchObject({ steps: 2 });
          expect(r.slowAsync).toMatchObject({ steps: 2 });
          expect(r.charge.charged).toBe(7);
        } finally {
          await client.close();
        }
      });
    }

    it(`SDK v1 client keeps a 2025-era session, ${setup}`, async () => {
      const client = new ClientV1({ name: "eras-test-v1", version: "1.0.0" });
      const transport = new TransportV1(new URL(urlOf()));
      await client.connect(transport);
      try {
        expect(transport.sessionId).toBeTruthy();
        await client.callTool({ name: "notes_put", arguments: { key: "a", value: "b" } });
        const notes = structured(await client.callTool({ name: "notes_get", arguments: {} }));
        expect(notes.notes).toEqual({ a: "b" });
        const counter = structured(
          await client.callTool({ name: "counter_increment", arguments: { name: "eras" } }),
        );
        expect(counter.value).toBeGreaterThanOrEqual(1);
      } finally {
        await transport.terminateSession().catch(() => {});
        await client.close();
      }
    });

    it(`a task is polled and a replayed state refused on any instance, ${setup}`, async () => {
      const url = urlOf();
      const created = await rpc(url, "tools/call", {
        name: "slow_task_async",
        arguments: { steps: 2, stepMs: 20 },
      });
      expect(created.result?.resultType).toBe("task");
      const taskId = created.result?.taskId as string;
      let status = "";
      for (let i = 0; i < 100 && status !== "completed"; i++) {
        const got = await rpc(url, "tasks/get", { taskId });
        status = String(got.result?.status ?? JSON.stringify(got.error));
        if (status !== "completed") await new Promise((r) => setTimeout(r, 20));
      }
      expect(status).toBe("completed");

      const round1 = await rpc(url, "tools/call", {
        name: "confirm_charge",
        arguments: { amount: 3 },
      });
      expect(round1.result?.resultType).toBe("input_required");
      const round2 = {
        name: "confirm_charge",
        arguments: { amount: 3 },
        requestState: round1.result?.requestState,
        inputResponses: { confirm: { action: "accept", content: { ok: true } } },
      };
      const charged = await rpc(url, "tools/call", round2);
      expect(structured(charged.result).charged).toBe(3);
      // Twice, so that through the round robin both instances refuse it.
      for (let i = 0; i < 2; i++) {
        expect((await rpc(url, "tools/call", round2)).error?.code).toBe(-32602);
      }
    });
  }
});
