// Multi round-trip requests and tasks (protocol 2026-07-28) on shared state: any instance may
// serve any round or any task call. Runs as is: `REDIS_URL=redis://... node --import tsx
// examples/mcp-v2-tasks.ts` (without REDIS_URL it falls back to memory). In your project the
// imports read "mcp-session-store/mcp/v2".
import {
  createMcpHandler,
  inputRequired,
  McpServer,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { z } from "zod";
import {
  createTaskResult,
  registerRedisBackedServices,
  registerTaskHandlers,
  requestStateCodec,
  TASKS_EXTENSION,
} from "../src/mcp/v2/index.js";

const services = await registerRedisBackedServices({
  redisUrl: process.env.REDIS_URL ?? "redis://localhost:6379",
  prefix: "example:",
  // Every instance gets the same keys from configuration; rotate by moving `current` to `previous`.
  requestStates: {
    keys: { current: process.env.STATE_KEY ?? "change-me-to-32-or-more-random-bytes!!" },
  },
});

const principalOf = (ctx: ServerContext) => ctx.http?.authInfo?.clientId ?? "anonymous";
// The state is bound to the caller: another principal cannot redeem it.
const transferState = requestStateCodec<{ amount: number }>(services.requestStates, {
  bind: principalOf,
});

const handler = createMcpHandler(
  () => {
    const server = new McpServer(
      { name: "tasks-demo", version: "1.0.0" },
      {
        // SDK 2.4 does not type extensions yet.
        capabilities: { tools: {}, extensions: { [TASKS_EXTENSION]: {} } } as never,
        requestState: { verify: transferState.verify },
      },
    );

    // Multi round-trip: round 1 asks for a confirmation and returns a signed state; round 2 (on
    // any instance) redeems it once.
    server.registerTool(
      "transfer",
      { inputSchema: z.object({ amount: z.number() }) },
      async ({ amount }, ctx) => {
        const state = ctx.mcpReq.requestState<{ amount: number }>();
        if (state === undefined) {
          return inputRequired({
            inputRequests: {
              confirm: inputRequired.elicit({
                message: `Transfer ${amount}?`,
                requestedSchema: z.object({ ok: z.boolean() }),
              }),
            },
            requestState: await transferState.mint({ amount }, ctx),
          });
        }
        const answer = ctx.mcpReq.inputResponses?.confirm as { content?: { ok?: boolean } };
        const done = answer?.content?.ok === true;
        return { content: [{ type: "text", text: done ? `sent ${state.amount}` : "cancelled" }] };
      },
    );

    // A task: created durably before the result goes out, then worked on in the background.
    server.registerTool("export_report", { inputSchema: z.object({}) }, async (_args, ctx) => {
      const caller = { principal: principalOf(ctx) };
      const task = await services.tasks.create(caller);
      void services.tasks.run(task.taskId, caller, async ({ requestInput, signal }) => {
        const answers = await requestInput({
          format: inputRequired.elicit({
            message: "Which format?",
            requestedSchema: z.object({ format: z.string() }),
          }),
        });
        signal.throwIfAborted();
        const format = (answers.format as { content?: { format?: string } })?.content?.format;
        return { content: [{ type: "text", text: `report.${format}` }] };
      });
      // SDK 2.4 has no type for a CreateTaskResult yet.
      return createTaskResult(task) as never;
    });

    registerTaskHandlers(server.server, services.tasks, { principal: principalOf });
    return server;
  },
  { bus: services.eventBus },
);

// A bare client for the demo: SDK 2.4's client does not read task results yet.
let nextId = 0;
async function rpc(method: string, params: Record<string, unknown>) {
  const response = await handler.fetch(
    new Request("http://localhost/mcp", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-method": method,
        "mcp-protocol-version": "2026-07-28",
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
            "io.modelcontextprotocol/clientInfo": { name: "demo", version: "1.0.0" },
            "io.modelcontextprotocol/clientCapabilities": {
              elicitation: { form: {} },
              extensions: { [TASKS_EXTENSION]: {} },
            },
          },
        },
      }),
    }),
  );
  const text = await response.text();
  const json = text.startsWith("{") ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? "{}");
  return JSON.parse(json) as { result?: Record<string, unknown>; error?: { code: number } };
}

async function waitFor(taskId: string, status: string) {
  for (let i = 0; i < 100; i++) {
    const { result } = await rpc("tasks/get", { taskId });
    if (result?.status === status) return result;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`task never reached ${status}`);
}

// Multi round-trip, then the replay of round 2.
const round1 = await rpc("tools/call", { name: "transfer", arguments: { amount: 10 } });
const requestState = round1.result?.requestState as string;
const round2Params = {
  name: "transfer",
  arguments: { amount: 10 },
  requestState,
  inputResponses: { confirm: { action: "accept", content: { ok: true } } },
};
const round2 = await rpc("tools/call", round2Params);
const sent = (round2.result?.content as Array<{ text: string }> | undefined)?.[0];
console.log("transfer:", sent?.text);
const replay = await rpc("tools/call", round2Params);
console.log("replayed round 2:", replay.error?.code);

// A task that needs input.
const created = await rpc("tools/call", { name: "export_report", arguments: {} });
const taskId = created.result?.taskId as string;
console.log("task created:", created.result?.resultType, created.result?.status);
const parked = await waitFor(taskId, "input_required");
console.log("task asks for:", Object.keys(parked.inputRequests as object).join(","));
await rpc("tasks/update", {
  taskId,
  inputResponses: { format: { action: "accept", content: { format: "pdf" } } },
});
const done = await waitFor(taskId, "completed");
console.log("task result:", (done.result as { content: Array<{ text: string }> }).content[0]?.text);

await handler.close?.();
await services.close();
