/**
 * Edges of the cross-instance mechanism on one in-process instance with its own Redis: an
 * answer delivered once when POSTed twice, unknown answers dropped and counted, Redis not
 * answering while a request is sent, a resume racing the close of the stream it replaces, and
 * DELETE ending the standalone stream.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { redisAccessOf } from "../src/mcp/support.js";
import { type AskingClient, connectAskingClient } from "./fixtures/asking-clients.js";
import {
  type InProcess,
  post,
  rawInitialize,
  type SseEvent,
  sseEvents,
  startInProcess,
} from "./fixtures/mcp-helpers.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const V = { "mcp-protocol-version": "2025-11-25" };
const SSE = { accept: "application/json, text/event-stream" };

async function metric(app: InProcess, name: string, labels = ""): Promise<number> {
  const text = await app.services.registry.metrics();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!(line.startsWith(`${name} `) || line.startsWith(`${name}{`))) continue;
    if (labels !== "" && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** Reads SSE events from `reader`, keeping what a chunk holds beyond the event asked for. */
function eventReader(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): (until: (event: SseEvent) => boolean) => Promise<SseEvent> {
  const next = sseEvents(reader);
  return async (until) => {
    const event = await next(until);
    if (event === undefined) throw new Error("stream ended");
    return event;
  };
}

/** The next SSE event of `reader` that satisfies `until` (one buffer per reader). */
const readers = new WeakMap<object, (until: (event: SseEvent) => boolean) => Promise<SseEvent>>();
function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  until: (event: SseEvent) => boolean,
): Promise<SseEvent> {
  let read = readers.get(reader);
  if (read === undefined) {
    read = eventReader(reader);
    readers.set(reader, read);
  }
  return read(until);
}

/** Raises log notifications until one arrives on the client's standalone stream. */
async function waitForStream(client: AskingClient, prefix: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    await client.call("raise", { kind: "log", tag: `${prefix}-${i}` }).catch(() => "");
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (client.notifications.some((n) => n.startsWith(`notifications/message ${prefix}-`))) return;
  }
  throw new Error("the standalone stream never opened");
}

describe("cross-instance edges (one instance, Redis)", () => {
  let redis: RedisNode;
  let app: InProcess;

  beforeAll(async () => {
    redis = await startRedis();
    app = await startInProcess({
      redisUrl: redis.url,
      prefix: "edges:",
      fallback: "error",
      commandTimeout: 500,
    });
  });

  afterAll(async () => {
    await app?.close();
    await redis?.stop();
  });

  it("delivers an answer POSTed twice once; unknown answers are dropped and counted", async () => {
    const unknown = await metric(app, "mcp_session_store_mcp_answers_dropped_total");
    const id = await rawInitialize(app.url);
    const headers = { ...SSE, ...V, "mcp-session-id": id, "content-type": "application/json" };
    const call = await fetch(app.url, {
      method: "POST",
      headers,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 7,
        method: "tools/call",
        params: { name: "ask", arguments: { what: ["roots"], tag: "twice" } },
      }),
    });
    const reader = (call.body as ReadableStream<Uint8Array>).getReader();
    const request = await readUntil(reader, (e) => e.data.includes("roots/list"));
    const wireId = (JSON.parse(request.data) as { id: unknown }).id;
    expect(typeof wireId).toBe("string");
    const answer = JSON.stringify({
      jsonrpc: "2.0",
      id: wireId,
      result: { roots: [{ uri: "file:///once" }] },
    });
    const [first, second] = await Promise.all([
      post(app.url, answer, { ...V, "mcp-session-id": id }),
      post(app.url, answer, { ...V, "mcp-session-id": id }),
    ]);
    expect([first.status, second.status]).toEqual([202, 202]);
    const result = await readUntil(reader, (e) => e.data.includes('"id":7'));
    expect(result.data).toContain("local|file:///once");
    await reader.cancel();
    // One of the two, and an id nobody issued: both dropped.
    const stranger = JSON.stringify({ jsonrpc: "2.0", id: "0123456789ab.42", result: {} });
    expect((await post(app.url, stranger, { ...V, "mcp-session-id": id })).status).toBe(202);
    expect(await metric(app, "mcp_session_store_mcp_answers_dropped_total")).toBe(unknown + 2);
    expect(
      await metric(app, "mcp_session_store_mcp_answers_dropped_total", 'reason="unknown"'),
    ).toBeGreaterThanOrEqual(1);
  });

  it("cancels a timed-out request under the id the client saw, drops its late answer, counts bad channel messages", async () => {
    const access = redisAccessOf(app.services.sessionStore);
    if (access === undefined) throw new Error("expected a Redis store");
    const dropped = await metric(
      app,
      "mcp_session_store_mcp_answers_dropped_total",
      'reason="unknown"',
    );
    const id = await rawInitialize(app.url);
    const headers = { ...SSE, ...V, "mcp-session-id": id, "content-type": "application/json" };
    const call = await fetch(app.url, {
      method: "POST",
      headers,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 11,
        method: "tools/call",
        params: { name: "ask", arguments: { what: ["sampling"], tag: "late", timeoutMs: 300 } },
      }),
    });
    const reader = (call.body as ReadableStream<Uint8Array>).getReader();
    const request = await readUntil(reader, (e) => e.data.includes("sampling/createMessage"));
    const wireId = (JSON.parse(request.data) as { id: unknown }).id;
    const cancelled = await readUntil(reader, (e) => e.data.includes("notifications/cancelled"));
    expect(
      (JSON.parse(cancelled.data) as { params: { requestId: unknown } }).params.requestId,
    ).toBe(wireId);
    const result = await readUntil(reader, (e) => e.data.includes('"id":11'));
    expect(result.data).toContain("local|error:-32001");
    await reader.cancel();
    // The record went with the cancellation; the late answer finds nothing.
    expect(await access.client.keys("edges:*answer:*")).toEqual([]);
    const late = JSON.stringify({
      jsonrpc: "2.0",
      id: wireId,
      result: { role: "assistant", model: "m", content: { type: "text", text: "late" } },
    });
    expect((await post(app.url, late, { ...V, "mcp-session-id": id })).status).toBe(202);
    expect(
      await metric(app, "mcp_session_store_mcp_answers_dropped_total", 'reason="unknown"'),
    ).toBe(dropped + 1);
    // Garbage on the instance's answer channel is counted, nothing else happens.
    const [channel] = (await access.client.pubsub("CHANNELS", "edges:answers:*")) as string[];
    expect(await access.client.publish(channel as string, "{not json")).toBe(1);
    await expect
      .poll(() => metric(app, "mcp_session_store_mcp_answers_dropped_total", 'reason="malformed"'))
      .toBe(1);
  });

  it("fails a request to the client within the command timeout when Redis does not answer", {
    timeout: 20_000,
  }, async () => {
    const client = await connectAskingClient("v1", app.url, fetch);
    const access = redisAccessOf(app.services.sessionStore);
    if (access === undefined) throw new Error("expected a Redis store");
    const original = access.client.set.bind(access.client);
    // Only the request records hang: everything else in the store keeps working.
    const spy = vi
      .spyOn(access.client, "set")
      .mockImplementation(((...args: unknown[]) =>
        String(args[0]).includes(":answer:")
          ? new Promise(() => {})
          : (original as (...a: unknown[]) => unknown)(...args)) as never);
    try {
      const started = Date.now();
      const text = await client.call("ask", { what: ["sampling"], tag: "down" });
      expect(text).toBe("local|error:ERR_BACKEND_UNAVAILABLE");
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      spy.mockRestore();
      await client.close();
    }
    const client2 = await connectAskingClient("v1", app.url, fetch);
    expect(await client2.call("ask", { what: ["sampling"], tag: "up" })).toBe("local|sampled:up");
    await client2.close();
  });

  it("serves a resume of a request stream that arrives before the old connection closed (no 409)", async () => {
    const id = await rawInitialize(app.url);
    const headers = { ...SSE, ...V, "mcp-session-id": id, "content-type": "application/json" };
    const call = await fetch(app.url, {
      method: "POST",
      headers,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 9,
        method: "tools/call",
        params: { name: "ask", arguments: { what: ["roots"], tag: "resume" } },
      }),
    });
    const reader = (call.body as ReadableStream<Uint8Array>).getReader();
    const request = await readUntil(reader, (e) => e.data.includes("roots/list"));
    const resuming = fetch(app.url, {
      headers: {
        accept: "text/event-stream",
        ...V,
        "mcp-session-id": id,
        "last-event-id": request.id as string,
      },
    });
    // The old connection goes a little after the resume arrived.
    setTimeout(() => void reader.cancel(), 200);
    const resumed = await resuming;
    expect(resumed.status).toBe(200);
    const wireId = (JSON.parse(request.data) as { id: unknown }).id;
    const answer = JSON.stringify({
      jsonrpc: "2.0",
      id: wireId,
      result: { roots: [{ uri: "file:///r" }] },
    });
    expect((await post(app.url, answer, { ...V, "mcp-session-id": id })).status).toBe(202);
    const resumedReader = (resumed.body as ReadableStream<Uint8Array>).getReader();
    const result = await readUntil(resumedReader, (e) => e.data.includes('"id":9'));
    expect(result.data).toContain("local|file:///r");
    await resumedReader.cancel();
  });

  it("serves a resume of the standalone stream while the old one still looks open (no 409)", async () => {
    const id = await rawInitialize(app.url);
    const headers = { accept: "text/event-stream", ...V, "mcp-session-id": id };
    const first = await fetch(app.url, { headers });
    expect(first.status).toBe(200);
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    const priming = await readUntil(reader, (e) => e.id !== undefined);
    // A second stream without a cursor is refused, as the SDK does.
    const duplicate = await fetch(app.url, { headers });
    expect(duplicate.status).toBe(409);
    await duplicate.body?.cancel();
    // The client resumes before the server saw its old connection go.
    const resumed = await fetch(app.url, {
      headers: { ...headers, "last-event-id": priming.id as string },
    });
    expect(resumed.status).toBe(200);
    await expect(reader.read()).resolves.toMatchObject({ done: true });
    // DELETE ends the stream.
    const resumedReader = (resumed.body as ReadableStream<Uint8Array>).getReader();
    const del = await fetch(app.url, { method: "DELETE", headers: { ...V, "mcp-session-id": id } });
    expect(del.status).toBe(200);
    let done = false;
    while (!done) done = (await resumedReader.read()).done;
  });

  it("survives a Redis crash: requests fail with an error meanwhile, new sessions stream again after", {
    timeout: 30_000,
  }, async () => {
    const before = await connectAskingClient("v1", app.url, fetch);
    await waitForStream(before, "before");
    await redis.kill();
    // While Redis is down a tool call fails with an error: nothing hangs, nothing crashes.
    await expect(before.call("raise", { kind: "log", tag: "during" }, 5000)).rejects.toThrow(
      /unavailable/,
    );
    await before.close();
    // The restarted Redis is empty (the sessions are gone); new sessions work end to end, through
    // the subscriber connection that reconnected by itself.
    await redis.restart();
    let after: AskingClient | undefined;
    // The store's client reconnects with its own backoff: 503 until then.
    for (let i = 0; after === undefined; i++) {
      after = await connectAskingClient("v1", app.url, fetch).catch((err) => {
        if (i > 100) throw err;
        return undefined;
      });
      if (after === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    try {
      await waitForStream(after, "after");
      expect(await after.call("ask", { what: ["sampling"], tag: "back" })).toBe(
        "local|sampled:back",
      );
    } finally {
      await after.close();
    }
  });
});
