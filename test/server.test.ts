/**
 * The reference server as `npm start` runs it (built with tsc, a child process): the demo tools
 * through the SDK client, /metrics, /readyz against a real Redis killed and restarted, the
 * production protections, and SIGTERM during a running call behind nginx.
 */
import net from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { INIT } from "./fixtures/mcp-helpers.js";
import { type NginxHandle, startNginx } from "./support/nginx.js";
import { type RedisNode, startRedis } from "./support/redis.js";
import { type ServerProcess, startServer } from "./support/server.js";

async function connect(
  url: string,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: "server-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    reconnectionOptions: {
      initialReconnectionDelay: 50,
      maxReconnectionDelay: 500,
      reconnectionDelayGrowFactor: 1.5,
      maxRetries: 10,
    },
  });
  await client.connect(transport);
  return { client, transport };
}

function structured<T>(result: unknown): T {
  return (result as { structuredContent: T }).structuredContent;
}

/** Sum of the samples of `name` whose labels contain every `labels` pair. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("reference server, memory store", () => {
  let server: ServerProcess;
  const clients: Client[] = [];

  beforeAll(async () => {
    server = await startServer({
      env: { MAX_BODY_BYTES: "4096", REQUEST_TIMEOUT_MS: "1000", SHUTDOWN_TIMEOUT_MS: "2000" },
    });
  }, 300_000);
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("says which store it uses and why", () => {
    expect(server.output()).toContain("session store: memory (the default: REDIS_URL is not set");
  });

  it("initializes, lists and calls every tool through the SDK client", async () => {
    const { client } = await connect(server.mcpUrl);
    clients.push(client);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([
      "counter_increment",
      "notes_get",
      "notes_put",
      "slow_task",
      "slow_task_async",
    ]);

    await client.callTool({ name: "notes_put", arguments: { key: "a", value: "hello" } });
    const got = await client.callTool({ name: "notes_get", arguments: { key: "a" } });
    expect(structured<{ value: string }>(got).value).toBe("hello");
    const all = await client.callTool({ name: "notes_get", arguments: {} });
    expect(structured<{ notes: Record<string, string> }>(all).notes).toEqual({ a: "hello" });

    const first = structured<{ value: number; fencingToken: number }>(
      await client.callTool({ name: "counter_increment", arguments: { name: "t1" } }),
    );
    const second = structured<{ value: number; fencingToken: number }>(
      await client.callTool({ name: "counter_increment", arguments: { name: "t1" } }),
    );
    expect(second.value).toBe(first.value + 1);
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken);

    const progress: number[] = [];
    const slow = await client.callTool(
      { name: "slow_task", arguments: { steps: 3, stepMs: 10 } },
      CallToolResultSchema,
      { onprogress: (p) => progress.push(p.progress) },
    );
    expect(slow.isError).not.toBe(true);
    expect(progress).toEqual([1, 2, 3]);

    const task = await client.callTool({
      name: "slow_task_async",
      arguments: { steps: 2, stepMs: 10 },
    });
    expect(task.isError).not.toBe(true);
    expect(structured<{ steps: number }>(task).steps).toBe(2);
  });

  it("keeps notes per MCP session", async () => {
    const a = await connect(server.mcpUrl);
    const b = await connect(server.mcpUrl);
    clients.push(a.client, b.client);
    await a.client.callTool({ name: "notes_put", arguments: { key: "k", value: "from a" } });
    const seen = await b.client.callTool({ name: "notes_get", arguments: { key: "k" } });
    expect(structured<{ value: string | null }>(seen).value).toBeNull();
  });

  it("shows the store series moving on /metrics, with the default Node metrics", async () => {
    const before = await (await fetch(`${server.url}/metrics`)).text();
    expect(before).toContain("process_cpu_user_seconds_total");
    expect(before).toContain("nodejs_eventloop_lag_seconds");
    const { client } = await connect(server.mcpUrl);
    clients.push(client);
    await client.callTool({ name: "notes_put", arguments: { key: "m", value: "v" } });
    await client.callTool({ name: "counter_increment", arguments: {} });
    const after = await (await fetch(`${server.url}/metrics`)).text();
    const name = "mcp_session_store_operation_duration_seconds_count";
    expect(sample(after, name, { operation: "update" })).toBeGreaterThan(
      sample(before, name, { operation: "update" }),
    );
    expect(sample(after, name, { operation: "set" })).toBeGreaterThan(
      sample(before, name, { operation: "set" }),
    );
    expect(sample(after, "mcp_session_store_lock_acquire_duration_seconds_count")).toBeGreaterThan(
      sample(before, "mcp_session_store_lock_acquire_duration_seconds_count"),
    );
  });

  it("answers /healthz and /readyz", async () => {
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", backend: "memory" });
  });

  it("refuses bodies over MAX_BODY_BYTES with 413 and a JSON-RPC error", async () => {
    const response = await fetch(server.mcpUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({ ...INIT, params: { ...INIT.params, padding: "x".repeat(5000) } }),
    });
    expect(response.status).toBe(413);
    const body = (await response.json()) as {
      jsonrpc: string;
      error: { code: number; message: string };
    };
    expect(body.jsonrpc).toBe("2.0");
    expect(body.error.message).not.toMatch(/\n\s+at /);
  });

  it("refuses foreign Host and Origin headers (DNS rebinding) and accepts local ones", async () => {
    const post = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const socket = net.connect(server.port, "127.0.0.1");
        const body = JSON.stringify(INIT);
        const head = {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "content-length": String(Buffer.byteLength(body)),
          connection: "close",
          ...headers,
        };
        socket.write(
          `POST /mcp HTTP/1.1\r\n${Object.entries(head)
            .map(([k, v]) => `${k}: ${v}`)
            .join("\r\n")}\r\n\r\n${body}`,
        );
        let data = "";
        socket.on("data", (c) => {
          data += c.toString();
          if (data.includes("\r\n\r\n")) {
            socket.destroy();
            resolve(Number(data.split(" ")[1]));
          }
        });
        socket.on("error", reject);
      });
    expect(await post({ host: "evil.example.com" })).toBe(403);
    expect(
      await post({ host: `127.0.0.1:${server.port}`, origin: "http://evil.example.com" }),
    ).toBe(403);
    expect(await post({ host: `localhost:${server.port}`, origin: "http://localhost:5173" })).toBe(
      200,
    );
  });

  it("answers an unknown session with 404 and a JSON-RPC body", async () => {
    const response = await fetch(server.mcpUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": "no-such-session",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32001 } });
  });

  it("drops a request whose body does not arrive within REQUEST_TIMEOUT_MS", async () => {
    const status = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(server.port, "127.0.0.1");
      socket.write(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
      );
      let data = "";
      socket.on("data", (c) => {
        data += c.toString();
      });
      socket.on("close", () => resolve(data));
      socket.on("error", reject);
    });
    expect(status).toMatch(/^HTTP\/1\.1 408/);
  });
});

describe("reference server, Redis store", () => {
  let redis: RedisNode;
  let server: ServerProcess;

  beforeAll(async () => {
    redis = await startRedis();
    server = await startServer({ env: { REDIS_URL: redis.url, KEY_PREFIX: "srvtest:" } });
  }, 300_000);
  afterAll(async () => {
    await server?.stop();
    await redis?.stop();
  });

  it("says it uses Redis because REDIS_URL is set", () => {
    expect(server.output()).toMatch(
      /session store: redis at redis:\/\/127\.0\.0\.1:\d+.*REDIS_URL is set/,
    );
  });

  it("reports 503 on /readyz while Redis is down and 200 once it is back", async () => {
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    await redis.kill();
    await until("readyz 503", async () => {
      const r = await fetch(`${server.url}/readyz`);
      const body = (await r.json()) as { status: string };
      return r.status === 503 && body.status === "unavailable" ? true : undefined;
    });
    await redis.restart();
    await until(
      "readyz 200",
      async () => ((await fetch(`${server.url}/readyz`)).status === 200 ? true : undefined),
      15_000,
    );
    // and the process survived it
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it("exits with a message when REDIS_URL does not answer at start", async () => {
    await expect(
      startServer({ env: { REDIS_URL: "redis://127.0.0.1:1", KEY_PREFIX: "srvtest:" } }),
    ).rejects.toThrow(/session store unavailable/);
  }, 180_000);
});

describe("SIGTERM behind nginx", () => {
  let redis: RedisNode;
  const pair: ServerProcess[] = [];
  let nginx: NginxHandle;

  beforeAll(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, KEY_PREFIX: "drain:", SHUTDOWN_TIMEOUT_MS: "10000" };
    pair.push(await startServer({ env }), await startServer({ env }));
    nginx = await startNginx(pair.map((s) => s.port));
  }, 300_000);
  afterAll(async () => {
    await nginx?.stop();
    await Promise.all(pair.map((s) => s.stop()));
    await redis?.stop();
  });

  it("lets a running slow_task finish, exits 0, and the session lives on the other instance", async () => {
    const { client } = await connect(`${nginx.url}/mcp`);
    try {
      await client.callTool({ name: "notes_put", arguments: { key: "keep", value: "me" } });
      let stopping: Promise<{ code: number | null }> | undefined;
      let victim: ServerProcess | undefined;
      const result = await client.callTool(
        { name: "slow_task", arguments: { steps: 8, stepMs: 150 } },
        CallToolResultSchema,
        {
          timeout: 20_000,
          onprogress: (p) => {
            if (stopping !== undefined) return;
            const port = Number(/:(\d+)$/.exec(p.message ?? "")?.[1]);
            victim = pair.find((s) => s.port === port);
            stopping = victim?.stop("SIGTERM");
          },
        },
      );
      expect(victim).toBeDefined();
      expect(result.isError).not.toBe(true);
      expect(structured<{ instance: string }>(result).instance).toBe(`127.0.0.1:${victim?.port}`);
      expect((await stopping)?.code).toBe(0);
      expect(victim?.output()).toContain("SIGTERM: draining");

      // The session was not lost: the survivor rebuilds it from the store.
      const survivor = pair.find((s) => s !== victim) as ServerProcess;
      const note = await client.callTool({ name: "notes_get", arguments: { key: "keep" } });
      expect(structured<{ value: string; instance: string }>(note)).toEqual({
        key: "keep",
        value: "me",
        instance: `127.0.0.1:${survivor.port}`,
      });
    } finally {
      await client.close();
    }
  });
});
