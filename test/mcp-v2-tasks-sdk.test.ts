/**
 * Request states and tasks behind a real SDK v2 `createMcpHandler`, driven by a real SDK v2
 * client, with every request landing on the other of two instances sharing one Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { memoryBus } from "./fixtures/v2-tasks-harness.js";
import { alternatingClient, call, type SdkInstance, sdkInstance } from "./fixtures/v2-tasks-sdk.js";
import { eventually } from "./support/eventually.js";
import { type RedisNode, startRedis } from "./support/redis.js";

let redis: RedisNode;
let a: SdkInstance;
let b: SdkInstance;

beforeAll(async () => {
  redis = await startRedis();
  // One bus between the two, as a Redis pub/sub bus would be.
  const bus = memoryBus();
  a = await sdkInstance(redis.url, bus);
  b = await sdkInstance(redis.url, bus);
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await redis?.stop();
});

/** Sends one raw JSON-RPC body to an instance and returns the parsed JSON-RPC response. */
async function post(
  instance: SdkInstance,
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const response = await instance.handler.fetch(
    new Request("http://instances.test/mcp", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-method": String(body.method),
        "mcp-name": String((body.params as { name?: string }).name),
        "mcp-protocol-version": "2026-07-28",
      },
      body: JSON.stringify(body),
    }),
  );
  const text = await response.text();
  const data = text.startsWith("{") ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? text);
  return JSON.parse(data) as Record<string, unknown>;
}

describe("request states through createMcpHandler", () => {
  it("round 1 on A mints, round 2 on B consumes; the replayed round 2 is refused on A and on B", async () => {
    const { client, sent } = await alternatingClient([a, b]);
    const result = await client.callTool({ name: "confirm", arguments: {} });
    const text = (result.content as Array<{ text: string }>)[0]?.text ?? "";
    expect(JSON.parse(text)).toEqual({
      state: { step: 1 },
      answer: { action: "accept", content: { proceed: true } },
    });

    const retry = sent.find(
      (body) => (body.params as { requestState?: string })?.requestState !== undefined,
    );
    expect(retry, "the client echoed a requestState").toBeDefined();
    for (const instance of [a, b]) {
      const replay = await post(instance, { ...retry, id: 99 });
      expect(replay.error).toMatchObject({
        code: -32602,
        message: "Invalid or expired requestState",
      });
    }
    expect(await b.registry.metrics()).toMatch(
      /request_state_consumed_total\{outcome="replay"\} 1/,
    );
    await client.close();
  });
});

describe("tasks through createMcpHandler", () => {
  it("a task created on A is read and cancelled through B; its worker on A stops", async () => {
    const { client } = await alternatingClient([b], { tasks: true });
    const task = await a.tasks.create({ principal: "test-client" });
    let aborted = false;
    const worker = a.tasks.run(task.taskId, { principal: "test-client" }, async ({ signal }) => {
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
      aborted = true;
      return { content: [] };
    });
    const { taskId } = task;
    const got = await call(client, "tasks/get", { taskId });
    expect(got).toMatchObject({ taskId, status: "working", ttlMs: task.ttlMs });
    expect(got).not.toHaveProperty("requestState");
    const ack = await call(client, "tasks/cancel", { taskId });
    expect(ack).not.toHaveProperty("taskId");
    expect(ack).not.toHaveProperty("status");
    expect((await call(client, "tasks/get", { taskId })).status).toBe("cancelled");
    await call(client, "tasks/cancel", { taskId });
    await worker;
    expect(aborted).toBe(true);
    await expect(
      call(client, "tasks/get", { taskId: "tasks-conformance-nonexistent-12345" }),
    ).rejects.toMatchObject({ code: -32602 });
    await client.close();
  });

  it("tasks/update through B answers the input a worker on A asked for", async () => {
    const { client } = await alternatingClient([b], { tasks: true });
    const caller = { principal: "test-client" };
    const { taskId } = await a.tasks.create(caller);
    const worker = a.tasks.run(taskId, caller, async ({ requestInput }) => {
      const answers = await requestInput({ pick: { method: "elicitation/create", params: {} } });
      return { content: [{ type: "text", text: JSON.stringify(answers) }] };
    });
    await eventually(async () =>
      expect((await call(client, "tasks/get", { taskId })).status).toBe("input_required"),
    );
    const answer = { action: "accept", content: { choice: "b" } };
    const ack = await call(client, "tasks/update", { taskId, inputResponses: { pick: answer } });
    expect(ack).not.toHaveProperty("status");
    await worker;
    const done = await call(client, "tasks/get", { taskId });
    expect(done.status).toBe("completed");
    expect(done.result).toEqual({
      content: [{ type: "text", text: JSON.stringify({ pick: answer }) }],
    });
    await client.close();
  });

  it("a client that did not declare the extension gets -32021 from the task methods", async () => {
    const { client } = await alternatingClient([a, b]);
    for (const [method, params] of [
      ["tasks/get", { taskId: "gate-test" }],
      ["tasks/update", { taskId: "gate-test", inputResponses: {} }],
      ["tasks/cancel", { taskId: "gate-test" }],
    ] as const) {
      await expect(call(client, method, params)).rejects.toMatchObject({ code: -32021 });
    }
    await client.close();
  });
});
