/**
 * The shared-session handler on one instance with the memory store: end to end through the
 * official SDK client, plus bad input on the HTTP surface.
 */
import http from "node:http";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { CallToolResultSchema, CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ErrorCode, SessionStoreError } from "../src/errors.js";
import { createMcpHttpHandler, registerRedisBackedServices } from "../src/mcp/index.js";
import {
  connectClient,
  INIT,
  type InProcess,
  post,
  rawInitialize,
  startInProcess,
  textOf,
} from "./fixtures/mcp-helpers.js";

async function metric(app: InProcess, name: string): Promise<number> {
  const text = await app.services.registry.metrics();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`))
      total += Number(line.split(" ").pop());
  }
  return total;
}

describe("MCP handler, memory store", () => {
  let app: InProcess;

  beforeAll(async () => {
    app = await startInProcess({ forceMemorySessionStore: true }, { maxLocalSessions: 2 });
  });
  afterAll(async () => {
    await app?.close();
  });

  it("initializes, stores the session record, lists and calls tools", async () => {
    const { client, transport } = await connectClient(app.url);
    try {
      const id = transport.sessionId as string;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      const stored = (await app.services.sessionStore.getSession(id)) as {
        mcp: Record<string, unknown>;
      };
      expect(stored.mcp).toMatchObject({
        protocolVersion: "2025-11-25",
        clientInfo: { name: "test-client", version: "1.0.0" },
        principal: null,
      });
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name).sort()).toEqual([
        "ask",
        "ask-standalone",
        "delay-task",
        "echo",
        "notify",
        "raise",
        "steps",
        "whoami",
      ]);
      expect(textOf(await client.callTool({ name: "echo", arguments: { text: "hi" } }))).toBe("hi");
      expect(
        await metric(app, "mcp_session_store_mcp_sessions_created_total"),
      ).toBeGreaterThanOrEqual(1);
    } finally {
      await client.close();
    }
  });

  it("resumes a dropped stream mid tool call with exactly the missed events", async () => {
    const { client } = await connectClient(app.url);
    try {
      const progress: number[] = [];
      const result = await client.callTool(
        { name: "steps", arguments: { count: 6, closeAfter: 2 } },
        undefined,
        {
          onprogress: (p) => progress.push(p.progress),
        },
      );
      expect(textOf(result)).toBe("done 6 on local");
      expect(progress).toEqual([1, 2, 3, 4, 5, 6]);
      expect(
        await metric(app, "mcp_session_store_mcp_events_replayed_total"),
      ).toBeGreaterThanOrEqual(5);
    } finally {
      await client.close();
    }
  });

  it("rebuilds a session evicted by the LRU (2 local sessions) from the store", async () => {
    const rebuilt = await metric(app, "mcp_session_store_mcp_sessions_rebuilt_total");
    const evicted = await metric(app, "mcp_session_store_mcp_transports_evicted_total");
    // Raw sessions: no standalone GET stream, so nothing keeps them busy.
    const ids = [
      await rawInitialize(app.url),
      await rawInitialize(app.url),
      await rawInitialize(app.url),
    ];
    expect(app.handler.localSessions).toBeLessThanOrEqual(2);
    expect(await metric(app, "mcp_session_store_mcp_transports_evicted_total")).toBeGreaterThan(
      evicted,
    );
    const call = JSON.stringify({
      jsonrpc: "2.0",
      id: 3,
      method: "tools/call",
      params: { name: "echo", arguments: { text: "back" } },
    });
    const res = await post(app.url, call, {
      "mcp-session-id": ids[0] as string,
      "mcp-protocol-version": "2025-11-25",
    });
    expect(res.status).toBe(200);
    expect(res.text).toContain('"text":"back"');
    expect(await metric(app, "mcp_session_store_mcp_sessions_rebuilt_total")).toBe(rebuilt + 1);
  });

  it("fails loudly when the SDK no longer accepts the replayed initialize", async () => {
    const errors: string[] = [];
    const broken = await startInProcess(
      { forceMemorySessionStore: true },
      {
        maxLocalSessions: 1,
        logger: { info: () => {}, warn: () => {}, error: (m: string) => errors.push(m) },
      },
    );
    try {
      const first = await rawInitialize(broken.url);
      await rawInitialize(broken.url); // evicts the first session's transport
      // Stands in for an SDK release that refuses the replay (fault injection).
      const spy = vi
        .spyOn(WebStandardStreamableHTTPServerTransport.prototype, "handleRequest")
        .mockResolvedValueOnce(new Response("{}", { status: 400 }));
      const call = JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/list" });
      const res = await post(broken.url, call, {
        "mcp-session-id": first,
        "mcp-protocol-version": "2025-11-25",
      });
      spy.mockRestore();
      expect(res.status).toBe(500);
      expect(res.json).toMatchObject({
        error: { code: -32603, message: expect.stringContaining("could not be restored") },
      });
      expect(errors.join("\n")).toContain("did not accept the replayed initialize");
      // Nothing stored changed: the session is still there, and a working SDK rebuilds it.
      const retry = await post(broken.url, call, {
        "mcp-session-id": first,
        "mcp-protocol-version": "2025-11-25",
      });
      expect(retry.status).toBe(200);
    } finally {
      await broken.close();
    }
  });

  it("bounds the local sessions in record bytes as well as in count", async () => {
    const bounded = await startInProcess(
      { forceMemorySessionStore: true },
      { maxLocalSessionBytes: 5000, maxSessionRecordBytes: 4000 },
    );
    try {
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        const body = JSON.stringify({
          ...INIT,
          params: {
            ...INIT.params,
            clientInfo: { name: "big", version: "1", title: "t".repeat(2000) },
          },
        });
        const res = await post(bounded.url, body);
        expect(res.status).toBe(200);
        ids.push(res.headers.get("mcp-session-id") as string);
      }
      // About 2 KB each: two fit in 5000 bytes; the older ones stay in the store only.
      expect(bounded.handler.localSessions).toBe(2);
      const call = JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" });
      const res = await post(bounded.url, call, {
        "mcp-session-id": ids[0] as string,
        "mcp-protocol-version": "2025-11-25",
      });
      expect(res.status).toBe(200);
      expect(bounded.handler.localSessions).toBe(2);

      const tooBig = JSON.stringify({
        ...INIT,
        id: "big-1",
        params: {
          ...INIT.params,
          clientInfo: { name: "big", version: "1", title: "t".repeat(5000) },
        },
      });
      const refused = await post(bounded.url, tooBig);
      expect(refused.status).toBe(413);
      expect(refused.json).toMatchObject({ id: "big-1", error: { code: -32602 } });
    } finally {
      await bounded.close();
    }
  });

  it("answers 503 while the store is down and logs the outage once, not per request", async () => {
    const lines: string[] = [];
    const log = (m: string) => lines.push(m);
    const down = await startInProcess(
      { forceMemorySessionStore: true },
      { logger: { info: () => {}, warn: log, error: log } },
    );
    try {
      const id = await rawInitialize(down.url);
      // Fault injection: the store stops answering.
      const spy = vi
        .spyOn(down.services.sessionStore, "touchSession")
        .mockRejectedValue(
          new SessionStoreError(ErrorCode.BACKEND_UNAVAILABLE, "Redis touch failed: ECONNREFUSED"),
        );
      const call = JSON.stringify({ jsonrpc: "2.0", id: 4, method: "tools/list" });
      for (let i = 0; i < 20; i++) {
        const res = await post(down.url, call, {
          "mcp-session-id": id,
          "mcp-protocol-version": "2025-11-25",
        });
        expect(res.status).toBe(503);
        expect(res.json).toMatchObject({ id: 4 });
      }
      spy.mockRestore();
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain("ECONNREFUSED");
    } finally {
      await down.close();
    }
  });

  it("closes idle transports; the client goes on through a rebuild", async () => {
    const idle = await startInProcess({ forceMemorySessionStore: true }, { idleTimeoutMs: 200 });
    const { client } = await connectClient(idle.url);
    try {
      expect(textOf(await client.callTool({ name: "whoami", arguments: {} }))).toBe("local");
      await vi.waitFor(
        async () =>
          expect(
            await metric(idle, "mcp_session_store_mcp_transports_evicted_total"),
          ).toBeGreaterThan(0),
        { timeout: 5000, interval: 50 },
      );
      expect(
        textOf(await client.callTool({ name: "echo", arguments: { text: "still here" } })),
      ).toBe("still here");
      expect(await metric(idle, "mcp_session_store_mcp_sessions_rebuilt_total")).toBeGreaterThan(0);
    } finally {
      await client.close();
      await idle.close();
    }
  });

  it("runs tasks bound to their session", async () => {
    const a = await connectClient(app.url);
    const b = await connectClient(app.url);
    try {
      const created = await a.client.request(
        {
          method: "tools/call",
          params: { name: "delay-task", arguments: { ms: 30 }, task: { ttl: 60_000 } },
        },
        CreateTaskResultSchema,
      );
      const taskId = created.task.taskId;
      expect((await a.client.experimental.tasks.getTask(taskId)).taskId).toBe(taskId);
      const result = await a.client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema);
      expect(textOf(result)).toBe("slept 30 on local");
      await expect(b.client.experimental.tasks.getTask(taskId)).rejects.toThrow();
      const listed = await a.client.experimental.tasks.listTasks();
      expect(listed.tasks.map((t) => t.taskId)).toContain(taskId);
      expect((await b.client.experimental.tasks.listTasks()).tasks).toEqual([]);
    } finally {
      await Promise.all([a.client.close(), b.client.close()]);
    }
  });

  it("DELETE ends the session: 404 afterwards, record and events gone", async () => {
    const { client, transport } = await connectClient(app.url);
    const id = transport.sessionId as string;
    await client.callTool({ name: "echo", arguments: { text: "x" } });
    await transport.terminateSession();
    await client.close();
    expect(await app.services.sessionStore.getSession(id)).toBeNull();
    const res = await post(
      app.url,
      JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
      {
        "mcp-session-id": id,
        "mcp-protocol-version": "2025-11-25",
      },
    );
    expect(res.status).toBe(404);
    // The error carries the request's id.
    expect(res.json).toMatchObject({ jsonrpc: "2.0", error: { code: -32001 }, id: 2 });
  });
});

describe("MCP handler, bad input", () => {
  let app: InProcess;
  const list = JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list" });

  beforeAll(async () => {
    app = await startInProcess({ forceMemorySessionStore: true }, { maxBodyBytes: 64 * 1024 });
  });
  afterAll(async () => {
    await app?.close();
  });

  async function sessionCount(): Promise<number> {
    let n = 0;
    for await (const _ of app.services.sessionStore.listSessions()) n++;
    return n;
  }

  it("rejects malformed and unknown session ids", async () => {
    const before = await sessionCount();
    const malformed = await post(app.url, list, { "mcp-session-id": "bad id with spaces" });
    expect(malformed.status).toBe(400);
    expect(malformed.json).toMatchObject({ error: { code: -32000 } });
    const tooLong = await post(app.url, list, { "mcp-session-id": "x".repeat(600) });
    expect(tooLong.status).toBe(400);
    const unknown = await post(app.url, list, {
      "mcp-session-id": "00000000-0000-4000-8000-000000000000",
    });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ error: { code: -32001, message: "Session not found" } });
    const missing = await post(app.url, list);
    expect(missing.status).toBe(400);
    expect(await sessionCount()).toBe(before);
  });

  it("rejects bad JSON, non-JSON content types, oversized bodies and odd methods", async () => {
    const before = await sessionCount();
    const bad = await post(app.url, "{not json");
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: { code: -32700 } });
    const text = await post(app.url, JSON.stringify(INIT), { "content-type": "text/plain" });
    expect(text.status).toBe(415);
    const big = await post(app.url, JSON.stringify({ ...INIT, pad: "x".repeat(100 * 1024) }));
    expect(big.status).toBe(413);
    const put = await fetch(app.url, { method: "PUT" });
    expect(put.status).toBe(405);
    await put.text();
    const notRpc = await post(app.url, JSON.stringify({ hello: "world" }));
    expect(notRpc.status).toBe(400);
    const twoInits = await post(app.url, JSON.stringify([INIT, { ...INIT, id: 2 }]));
    expect(twoInits.status).toBe(400);
    // A refused initialize (no text/event-stream in Accept) leaves nothing stored.
    const notAcceptable = await post(app.url, JSON.stringify(INIT), { accept: "application/json" });
    expect(notAcceptable.status).toBe(406);
    expect(await sessionCount()).toBe(before);
  });

  it("answers 404 to another principal and changes nothing", async () => {
    const id = await rawInitialize(app.url, { "x-test-principal": "alice" });
    const ttlBefore = (await app.services.sessionStore.getSessionTtl(id)) as number;
    const headers = { "mcp-session-id": id, "mcp-protocol-version": "2025-11-25" };
    const mallory = await post(app.url, list, { ...headers, "x-test-principal": "mallory" });
    expect(mallory.status).toBe(404);
    const anonymous = await post(app.url, list, headers);
    expect(anonymous.status).toBe(404);
    const del = await fetch(app.url, {
      method: "DELETE",
      headers: { ...headers, "x-test-principal": "mallory" },
    });
    expect(del.status).toBe(404);
    await del.text();
    expect(await app.services.sessionStore.getSession(id)).not.toBeNull();
    expect((await app.services.sessionStore.getSessionTtl(id)) as number).toBeLessThanOrEqual(
      ttlBefore,
    );
    const alice = await post(app.url, list, { ...headers, "x-test-principal": "alice" });
    expect(alice.status).toBe(200);
  });

  it("refuses a second initialize on an existing session and unknown event ids", async () => {
    const id = await rawInitialize(app.url);
    const again = await post(app.url, JSON.stringify(INIT), { "mcp-session-id": id });
    expect(again.status).toBe(400);
    const resume = await fetch(app.url, {
      headers: { accept: "text/event-stream", "mcp-session-id": id, "last-event-id": "nope:1-0" },
    });
    expect(resume.status).toBe(400);
    await resume.text();
  });
});

describe("registerRedisBackedServices", () => {
  it("works as the seed call and closes with the McpServer, keeping its onclose", async () => {
    const server = new McpServer({ name: "seed", version: "1.0.0" });
    const calls: string[] = [];
    server.server.onclose = () => calls.push("existing");
    const services = await registerRedisBackedServices(server, {
      redisUrl: "redis://127.0.0.1:1",
      forceMemorySessionStore: true,
    });
    expect(services.sessionStore.backend).toBe("memory");
    expect(Object.keys(services).sort()).toEqual(
      [
        "close",
        "eventStore",
        "logger",
        "registry",
        "sessionStore",
        "taskMessageQueue",
        "taskStore",
      ].sort(),
    );
    await services.sessionStore.setSession("k", { v: 1 });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    await clientSide.start();
    await server.close();
    expect(calls).toContain("existing");
    await vi.waitFor(() =>
      expect(services.sessionStore.getSession("k")).rejects.toMatchObject({
        code: "ERR_STORE_CLOSED",
      }),
    );
  });

  it("closes with a node:http server too, and refuses bad options", async () => {
    const httpServer = http.createServer();
    const services = await registerRedisBackedServices(httpServer, {
      forceMemorySessionStore: true,
    });
    await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    await vi.waitFor(() =>
      expect(services.sessionStore.hasSession("x")).rejects.toMatchObject({
        code: "ERR_STORE_CLOSED",
      }),
    );
    await expect(
      registerRedisBackedServices(null, { forceMemorySessionStore: true, maxEventsPerSession: 0 }),
    ).rejects.toMatchObject({ code: "ERR_INVALID_ARGUMENT" });
  });

  it("createMcpHttpHandler refuses bad options with SessionStoreError ERR_INVALID_ARGUMENT", async () => {
    const services = await registerRedisBackedServices(null, { forceMemorySessionStore: true });
    try {
      for (const options of [
        { services, createServer: "not a function" },
        { services: undefined, createServer: () => new McpServer({ name: "x", version: "1" }) },
        {
          services,
          createServer: () => new McpServer({ name: "x", version: "1" }),
          maxBodyBytes: -1,
        },
      ]) {
        let thrown: unknown;
        try {
          createMcpHttpHandler(options as never);
        } catch (err) {
          thrown = err;
        }
        expect(thrown).toBeInstanceOf(SessionStoreError);
        expect(thrown).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
      }
    } finally {
      await services.close();
    }
  });
});
