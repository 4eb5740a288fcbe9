/**
 * The reference server (built, a child process) under hostile input: oversized and deeply nested
 * initializes, forged log lines, a flood of new sessions from one client, a foreign Host on
 * /metrics; and what it owes a client on SIGTERM (a clean end with a retry hint) and on
 * `Connection: close`. Each request count is fixed; everything runs on loopback.
 */
import net from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encode, printable } from "../src/codec.js";
import { isSessionStoreError } from "../src/errors.js";
import { clientAddress } from "../src/server/http.js";
import { RateLimiter } from "../src/server/rate-limit.js";
import { INIT } from "./fixtures/mcp-helpers.js";
import { buildServer, type ServerProcess, startServer } from "./support/server.js";

const HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

async function initialize(
  url: string,
  params: Record<string, unknown> = {},
  id: number | string = 7,
): Promise<{
  status: number;
  body: { id?: unknown; error?: { message: string } } | null;
  headers: Headers;
}> {
  const response = await fetch(url, {
    method: "POST",
    headers: HEADERS,
    body: JSON.stringify({ ...INIT, id, params: { ...INIT.params, ...params } }),
  });
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // an SSE answer
  }
  return { status: response.status, body, headers: response.headers };
}

/** `{ k: { k: ... } }`, `depth` levels of objects. */
function nested(depth: number, key = "a"): Record<string, unknown> {
  let value: Record<string, unknown> = {};
  for (let i = 0; i < depth; i++) value = { [key]: value };
  return value;
}

function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** Sends raw HTTP/1.1 and resolves with the response head (status line and headers). */
function rawHead(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.write(request);
    let data = "";
    socket.on("data", (chunk) => {
      data += chunk.toString();
      const end = data.indexOf("\r\n\r\n");
      if (end !== -1) {
        socket.destroy();
        resolve(data.slice(0, end).toLowerCase());
      }
    });
    socket.on("error", reject);
  });
}

// Compiling src/ may take a while on a busy machine; once per file, before any server starts.
beforeAll(() => {
  buildServer();
}, 300_000);

describe("printable and the ERR_SERIALIZATION message", () => {
  it("escapes control characters and caps the length", () => {
    expect(printable("a\nb\r\u0000\u2028c")).toBe("a\\nb\\r\\x00\\u2028c");
    const long = printable("x".repeat(10_000), 100);
    expect(long.length).toBeLessThan(150);
    expect(long).toContain("9900 more characters");
  });

  it("never carries a forged line or a megabyte key from the data", () => {
    const evil = "k\n[mcp-server] SIGTERM: draining\n[mcp-server] stopped";
    const data = { huge: { ["y".repeat(1_000_000)]: nested(300, evil) } };
    let message = "";
    try {
      encode(data, 10_000_000);
    } catch (err) {
      expect(isSessionStoreError(err) && err.code).toBe("ERR_SERIALIZATION");
      message = (err as Error).message;
    }
    expect(message).not.toContain("\n");
    expect(message.length).toBeLessThan(500);
  });
});

describe("initialize rate limit, unit", () => {
  it("refills over the window and keeps clients apart", () => {
    let now = 0;
    const limiter = new RateLimiter(2, 10_000, () => now);
    expect([limiter.take("a"), limiter.take("a"), limiter.take("b")]).toEqual([0, 0, 0]);
    expect(limiter.take("a")).toBe(5);
    now = 5_000;
    expect(limiter.take("a")).toBe(0);
    expect(limiter.take("a")).toBeGreaterThan(0);
    expect(new RateLimiter(0, 1000).take("a")).toBe(0);
  });

  it("takes the client from X-Forwarded-For only behind a trusted proxy, and then its last entry", () => {
    const req = {
      headers: { "x-forwarded-for": "6.6.6.6, 10.0.0.7" },
      socket: { remoteAddress: "172.18.0.5" },
    } as unknown as Parameters<typeof clientAddress>[0];
    expect(clientAddress(req, false)).toBe("172.18.0.5");
    expect(clientAddress(req, true)).toBe("10.0.0.7");
  });
});

describe("reference server, hostile input", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({ env: { SSE_RETRY_MS: "1234", SHUTDOWN_TIMEOUT_MS: "3000" } });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("refuses an initialize whose client info is over MAX_SESSION_RECORD_BYTES with 413 and the request id", async () => {
    const answer = await initialize(server.mcpUrl, {
      clientInfo: { name: "big", version: "1", description: "x".repeat(20_000) },
    });
    expect(answer.status).toBe(413);
    expect(answer.body?.id).toBe(7);
    expect(answer.body?.error?.message).toMatch(/at most 16384/);
    expect(answer.headers.get("mcp-session-id")).toBeNull();
  });

  it("stores nothing for a flood of 900 KB initializes from one client (fixed count, loopback)", async () => {
    const gauge = async () =>
      sample(await (await fetch(`${server.url}/metrics`)).text(), "mcp_session_store_sessions");
    const before = await gauge();
    const body = JSON.stringify({
      ...INIT,
      params: {
        ...INIT.params,
        clientInfo: { name: "x", version: "1", title: "t".repeat(900_000) },
      },
    });
    const statuses = new Map<number, number>();
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(
        Array.from({ length: 5 }, () =>
          fetch(server.mcpUrl, { method: "POST", headers: HEADERS, body }).then(async (r) => {
            await r.body?.cancel();
            return r.status;
          }),
        ),
      );
      for (const status of answers) statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
    expect(Object.fromEntries(statuses)).toEqual({ 413: 50 });
    expect(await gauge()).toBe(before);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it("answers capabilities nested 300 deep with 400 and the request id, and logs nothing", async () => {
    const before = server.output().length;
    const answer = await initialize(server.mcpUrl, { capabilities: nested(300) }, "req-1");
    expect(answer.status).toBe(400);
    expect(answer.body?.id).toBe("req-1");
    expect(answer.body?.error?.message).toMatch(/Invalid params/);
    expect(server.output().slice(before)).toBe("");
  });

  it("keeps forged lines and long keys out of the log and the answer", async () => {
    const evil = "k\n[mcp-server] stopped\n";
    const answer = await initialize(server.mcpUrl, {
      capabilities: { experimental: { ["z".repeat(20_000)]: nested(300, evil) } },
    });
    expect(answer.status).toBe(413);
    const deep = await initialize(server.mcpUrl, { capabilities: nested(300, evil) });
    expect(deep.status).toBe(400);
    expect(deep.body?.error?.message).not.toContain("\n");
    expect(deep.body?.error?.message.length).toBeLessThan(600);
    expect(server.output()).not.toMatch(/^\[mcp-server\] stopped/m);
  });

  it("refuses /metrics to a foreign Host, as /mcp does", async () => {
    const head = await rawHead(
      server.port,
      "GET /metrics HTTP/1.1\r\nhost: evil.example.com\r\nconnection: close\r\n\r\n",
    );
    expect(head).toMatch(/^http\/1\.1 403/);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
  });

  it("honours the client's Connection: close on an SSE answer", async () => {
    const body = JSON.stringify(INIT);
    const head = await rawHead(
      server.port,
      `POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:${server.port}\r\ncontent-type: application/json\r\n` +
        `accept: application/json, text/event-stream\r\nconnection: close\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    expect(head).toMatch(/^http\/1\.1 200/);
    expect(head).toContain("content-type: text/event-stream");
    expect(head).toContain("connection: close");
    expect(head).not.toContain("keep-alive");
  });

  it("counts MCP sessions only on the sessions gauge (the demo counters live apart)", async () => {
    const gauge = async () =>
      sample(await (await fetch(`${server.url}/metrics`)).text(), "mcp_session_store_sessions");
    const before = await gauge();
    const client = new Client({ name: "gauge", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(server.mcpUrl)));
    try {
      for (const name of ["g1", "g2", "g3"]) {
        await client.callTool({ name: "counter_increment", arguments: { name } });
      }
      expect(await gauge()).toBe(before + 1);
    } finally {
      await client.close();
    }
  });

  it("counts HTTP answers by route and status on /metrics", async () => {
    const unknown = await fetch(server.mcpUrl, {
      method: "POST",
      headers: { ...HEADERS, "mcp-session-id": "no-such-session" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/list" }),
    });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { id: unknown }).id).toBe(3);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(sample(text, "mcp_http_requests_total", { route: "/mcp", status: "404" })).toBe(1);
    expect(
      sample(text, "mcp_http_requests_total", { route: "/mcp", status: "413" }),
    ).toBeGreaterThanOrEqual(1);
  });

  // Last: it stops the server.
  it("ends an open SSE stream on SIGTERM with the retry hint and a clean end", async () => {
    const init = await fetch(server.mcpUrl, {
      method: "POST",
      headers: HEADERS,
      body: JSON.stringify(INIT),
    });
    const id = init.headers.get("mcp-session-id") as string;
    await init.text();
    await fetch(server.mcpUrl, {
      method: "POST",
      headers: { ...HEADERS, "mcp-session-id": id, "mcp-protocol-version": "2025-11-25" },
      body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
    });
    const stream = await fetch(server.mcpUrl, {
      headers: {
        accept: "text/event-stream",
        "mcp-session-id": id,
        "mcp-protocol-version": "2025-11-25",
      },
    });
    expect(stream.status).toBe(200);
    const reading = stream.text();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stopped = server.stop("SIGTERM");
    const text = await reading;
    expect(text).toContain("retry: 1234\n\n");
    expect((await stopped).code).toBe(0);
  });
});

describe("reference server, initialize rate limit", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServer({ env: { INIT_RATE_LIMIT: "3", INIT_RATE_WINDOW_MS: "60000" } });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("answers the fourth initialize of one client within the window with 429 and Retry-After", async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 6; i++) {
      const answer = await initialize(server.mcpUrl);
      statuses.push(answer.status);
      if (answer.status === 429) retryAfter = answer.headers.get("retry-after");
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(sample(text, "mcp_http_requests_total", { route: "/mcp", status: "429" })).toBe(3);
  });
});
