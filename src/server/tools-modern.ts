/**
 * The demo tools for protocol 2026-07-28 clients. There is no session any more: what a client
 * keeps between calls lives in server-minted handles (any instance reads them), a multi
 * round-trip call carries its state in a signed `requestState` consumed at most once, and the
 * long job runs as a task of the tasks extension that any instance can report on or cancel.
 *
 * - `notes_put` / `notes_get`: notes in a notebook handle (created by the first `notes_put`).
 * - `counter_increment`: a counter in a handle, incremented atomically.
 * - `slow_task`: a long call with progress notifications.
 * - `slow_task_async`: the same work as a task when the client declares the tasks extension.
 * - `confirm_charge`: asks the client to confirm, then charges once: a replayed confirmation
 *   is refused on every instance.
 */
import {
  type CallToolResult,
  inputRequired,
  type McpServer,
  type ServerContext,
} from "@modelcontextprotocol/server";
import { z } from "zod";
import { isSessionStoreError } from "../errors.js";
import type { McpV2Services, SharedRequestStateCodec } from "../mcp/v2/index.js";
import { createTaskResult } from "../mcp/v2/index.js";
import { declaresTasks, declareTaskSupport, type TaskSupport } from "./task-support.js";
import { json, registerSlowTask, sleep, slowInput } from "./tool-kit.js";

/** The demo tools' `execution.taskSupport`. */
export const DEMO_TASK_SUPPORT: Readonly<Record<string, TaskSupport>> = {
  slow_task_async: "optional",
};

const MAX_NOTES = 100;
/** Lifetime of a notebook or counter handle, seconds (slid by every use). */
const HANDLE_TTL = 24 * 3600;

export interface ModernToolsContext {
  services: McpV2Services;
  /** The shared request-state codec (also the server's `requestState.verify`). */
  codec: SharedRequestStateCodec<ChargeState>;
  /** Name of this instance (host:port), returned by the tools so clients see who served them. */
  instance: string;
}

/** What `confirm_charge` carries from its first round to its second. */
export interface ChargeState {
  tool: "confirm_charge";
  amount: number;
}

/** The caller that handles and tasks are bound to: the OAuth client when there is one. */
export function principalOf(ctx: ServerContext): string {
  return ctx.http?.authInfo?.clientId ?? "anonymous";
}

function toolError(message: string): CallToolResult {
  return { content: [{ type: "text", text: message }], isError: true };
}

/** An expired or unknown handle is something the model can act on, not a crash. */
async function withHandle(work: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await work();
  } catch (err) {
    if (isSessionStoreError(err) && err.code === "ERR_HANDLE_EXPIRED") {
      return toolError("This handle expired: call again without it to start a new one.");
    }
    if (isSessionStoreError(err) && err.code === "ERR_HANDLE_NOT_FOUND") {
      return toolError("Unknown handle: call again without it to start a new one.");
    }
    throw err;
  }
}

/** Registers the demo tools on one request's server. */
export function registerModernTools(server: McpServer, context: ModernToolsContext): void {
  const { services, codec, instance } = context;
  const { handles, tasks } = services;

  server.registerTool(
    "notes_put",
    {
      title: "Store a note",
      description:
        "Stores a note in a notebook. Without `notebook`, starts a new one and returns its handle: pass it to later calls.",
      inputSchema: z.object({
        key: z.string().min(1).max(128).describe("Name of the note"),
        value: z.string().max(10_000).describe("Text of the note"),
        notebook: z.string().max(256).optional().describe("Notebook handle from an earlier call"),
      }),
    },
    async ({ key, value, notebook }, ctx) =>
      withHandle(async () => {
        const caller = { principal: principalOf(ctx) };
        if (notebook === undefined) {
          const handle = await handles.create({ [key]: value }, { ...caller, ttl: HANDLE_TTL });
          return json({ notebook: handle, key, count: 1, instance });
        }
        const notes = await handles.update<Record<string, string>>(
          notebook,
          (current) => {
            if (!Object.hasOwn(current, key) && Object.keys(current).length >= MAX_NOTES) {
              throw new Error(`at most ${MAX_NOTES} notes per notebook`);
            }
            return { ...current, [key]: value };
          },
          caller,
        );
        await handles.touch(notebook, { ...caller, ttl: HANDLE_TTL });
        return json({ notebook, key, count: Object.keys(notes).length, instance });
      }),
  );

  server.registerTool(
    "notes_get",
    {
      title: "Read notes",
      description: "Reads one note (by key) or all notes of a notebook.",
      inputSchema: z.object({
        notebook: z.string().max(256).describe("Notebook handle from notes_put"),
        key: z.string().min(1).max(128).optional().describe("Name of the note; all when absent"),
      }),
    },
    async ({ notebook, key }, ctx) =>
      withHandle(async () => {
        const notes = await handles.get<Record<string, string>>(notebook, {
          principal: principalOf(ctx),
        });
        if (key === undefined) return json({ notebook, notes, instance });
        return json({
          notebook,
          key,
          value: Object.hasOwn(notes, key) ? notes[key] : null,
          instance,
        });
      }),
  );

  server.registerTool(
    "counter_increment",
    {
      title: "Increment a counter",
      description:
        "Increments a counter kept in a handle (atomically, whichever instance serves the call). Without `counter`, starts one at 1 and returns its handle.",
      inputSchema: z.object({
        counter: z.string().max(256).optional().describe("Counter handle from an earlier call"),
      }),
    },
    async ({ counter }, ctx) =>
      withHandle(async () => {
        const caller = { principal: principalOf(ctx) };
        if (counter === undefined) {
          const handle = await handles.create({ value: 1 }, { ...caller, ttl: HANDLE_TTL });
          return json({ counter: handle, value: 1, instance });
        }
        const { value } = await handles.update<{ value: number }>(
          counter,
          (current) => ({ value: current.value + 1 }),
          caller,
        );
        return json({ counter, value, instance });
      }),
  );

  registerSlowTask(server, instance);

  const slowAsync = server.registerTool(
    "slow_task_async",
    {
      title: "A long call as a task",
      description:
        "The work of slow_task as a task (extension io.modelcontextprotocol/tasks): poll it with tasks/get on any instance, cancel it with tasks/cancel. Without the extension, the call waits for the result.",
      inputSchema: slowInput,
    },
    async ({ steps, stepMs }, ctx) => {
      if (!declaresTasks(ctx)) {
        for (let step = 1; step <= steps; step++) await sleep(stepMs, ctx.mcpReq.signal);
        return json({ steps, stepMs, instance });
      }
      const caller = { principal: principalOf(ctx) };
      // Durable before the result leaves: any instance can answer tasks/get at once.
      const task = await tasks.create(caller, { statusMessage: `0 of ${steps} steps` });
      void tasks
        .run(task.taskId, caller, async ({ signal, progress }) => {
          for (let step = 1; step <= steps; step++) {
            await sleep(stepMs, signal);
            await progress(`${step} of ${steps} steps on ${instance}`);
          }
          return json({ steps, stepMs, instance }) as Record<string, unknown>;
        })
        .catch(() => {
          // The store is down: the task expires; nothing else to tell.
        });
      return createTaskResult(task) as never;
    },
  );

  declareTaskSupport({ slow_task_async: slowAsync }, DEMO_TASK_SUPPORT);

  server.registerTool(
    "confirm_charge",
    {
      title: "Charge once, after confirmation",
      description:
        "Asks the client to confirm a charge (multi round-trip), then charges exactly once: a replayed confirmation is refused on every instance.",
      inputSchema: z.object({ amount: z.number().positive().max(1_000_000) }),
    },
    async ({ amount }, ctx) => {
      // Verified and consumed by the server's requestState.verify before this handler runs.
      const state = ctx.mcpReq.requestState<ChargeState>();
      if (state === undefined || state.tool !== "confirm_charge") {
        return inputRequired({
          inputRequests: {
            confirm: inputRequired.elicit({
              message: `Charge ${amount}?`,
              requestedSchema: {
                type: "object",
                properties: { ok: { type: "boolean" } },
                required: ["ok"],
              },
            }),
          },
          requestState: await codec.mint({ tool: "confirm_charge", amount }, ctx),
        });
      }
      const answer = ctx.mcpReq.inputResponses?.confirm as
        | { action?: string; content?: { ok?: boolean } }
        | undefined;
      if (answer?.action !== "accept" || answer.content?.ok !== true) {
        return json({ charged: 0, instance });
      }
      return json({ charged: state.amount, instance });
    },
  );
}
