/**
 * The fixtures of the tasks extension's conformance scenarios (`tasks-*`, extension
 * `io.modelcontextprotocol/tasks`), served from the shared task store: a task created on one
 * instance is read, answered or cancelled on any other.
 */
import { acceptedContent, inputRequired, type McpServer } from "@modelcontextprotocol/server";
import * as z from "zod";
import { createTaskResult, type TaskStore } from "../mcp/v2/index.js";
import { declaresTasks, declareTaskSupport, type TaskSupport } from "./task-support.js";
import { principalOf } from "./tools-modern.js";

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Error("cancelled"));
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", abort);
      resolve();
    }, ms);
    function abort() {
      clearTimeout(timer);
      reject(new Error("cancelled"));
    }
    signal.addEventListener("abort", abort, { once: true });
  });
}

/** The fixtures' `execution.taskSupport`; `required` ones are refused without the extension. */
export const FIXTURE_TASK_SUPPORT: Readonly<Record<string, TaskSupport>> = {
  slow_compute: "optional",
  failing_job: "required",
  protocol_error_job: "optional",
  confirm_delete: "optional",
  multi_input: "optional",
  test_tool_with_task: "required",
};

const text = (value: string) => ({ content: [{ type: "text" as const, text: value }] });

const confirmSchema = {
  type: "object" as const,
  properties: { confirm: { type: "boolean" as const } },
  required: ["confirm"],
};

/** Registers `greet`, `test_tool_with_task`, `slow_compute`, `failing_job`, `protocol_error_job`, `confirm_delete`, `multi_input`. */
export function registerTaskFixtures(server: McpServer, tasks: TaskStore): void {
  /** Creates a task (durably) and runs `work` in the background; the result is the task. */
  const asTask = async (
    ctx: Parameters<typeof principalOf>[0],
    work: Parameters<TaskStore["run"]>[2],
  ) => {
    const caller = { principal: principalOf(ctx) };
    const task = await tasks.create(caller);
    void tasks.run(task.taskId, caller, work).catch(() => {});
    return createTaskResult(task) as never;
  };

  server.registerTool(
    "greet",
    { description: "Sync-only: says hello.", inputSchema: z.object({ name: z.string() }) },
    async ({ name }) => text(`Hello, ${name}!`),
  );

  const slowCompute = server.registerTool(
    "slow_compute",
    {
      description: "Task-supporting: sleeps `seconds` seconds, then answers.",
      inputSchema: z.object({ seconds: z.number().min(0).max(600), label: z.string().optional() }),
    },
    async ({ seconds, label }, ctx) => {
      const work = async ({ signal }: { signal: AbortSignal }) => {
        await sleep(seconds * 1000, signal);
        return text(`computed ${label ?? ""} after ${seconds}s`.replace("  ", " "));
      };
      if (!declaresTasks(ctx)) return work({ signal: ctx.mcpReq.signal });
      return asTask(ctx, work);
    },
  );

  const failing = server.registerTool(
    "failing_job",
    {
      description: "Task-supporting: ends with a tool error after about 1 s.",
      inputSchema: z.object({}),
    },
    async (_args, ctx) => {
      return asTask(ctx, async ({ signal }) => {
        await sleep(1000, signal);
        return { ...text("the job failed"), isError: true };
      });
    },
  );

  const protocolErrorJob = server.registerTool(
    "protocol_error_job",
    { description: "Task-supporting: fails with a protocol error.", inputSchema: z.object({}) },
    async (_args, ctx) => {
      if (!declaresTasks(ctx)) throw new Error("protocol_error_job failed");
      return asTask(ctx, async () => {
        throw new Error("protocol_error_job failed");
      });
    },
  );

  const confirmDelete = server.registerTool(
    "confirm_delete",
    {
      description: "Task-supporting: asks for a confirmation, then deletes.",
      inputSchema: z.object({ path: z.string().optional() }),
    },
    async ({ path }, ctx) => {
      if (!declaresTasks(ctx)) return text(`would delete ${path ?? "the file"}`);
      return asTask(ctx, async ({ requestInput }) => {
        const answers = await requestInput({
          confirm: inputRequired.elicit({
            message: `Delete ${path ?? "the file"}?`,
            requestedSchema: confirmSchema,
          }),
        });
        const answer = answers.confirm as { action?: string; content?: { confirm?: boolean } };
        const yes = answer?.action === "accept" && answer.content?.confirm !== false;
        return text(yes ? `deleted ${path ?? "the file"}` : "kept");
      });
    },
  );

  const multiInput = server.registerTool(
    "multi_input",
    {
      description: "Task-supporting: asks two questions at once.",
      inputSchema: z.object({}),
    },
    async (_args, ctx) => {
      if (!declaresTasks(ctx)) return text("no tasks: nothing to ask");
      return asTask(ctx, async ({ requestInput }) => {
        const answers = await requestInput({
          first: inputRequired.elicit({ message: "First?", requestedSchema: confirmSchema }),
          second: inputRequired.elicit({ message: "Second?", requestedSchema: confirmSchema }),
        });
        return text(`answered ${Object.keys(answers).sort().join(", ")}`);
      });
    },
  );

  const withTask = server.registerTool(
    "test_tool_with_task",
    {
      description:
        "Task support required: asks for a name (multi round-trip), then goes on as a task whose result greets that name.",
      inputSchema: z.object({}),
    },
    async (_args, ctx) => {
      const name = acceptedContent<{ name: string }>(ctx.mcpReq.inputResponses, "user_name")?.name;
      if (typeof name !== "string") {
        return inputRequired({
          inputRequests: {
            user_name: inputRequired.elicit({
              message: "What is your name?",
              requestedSchema: {
                type: "object",
                properties: { name: { type: "string" } },
                required: ["name"],
              },
            }),
          },
        });
      }
      return asTask(ctx, async () => text(`Hello, ${name}, from a task!`));
    },
  );

  declareTaskSupport(
    {
      slow_compute: slowCompute,
      failing_job: failing,
      protocol_error_job: protocolErrorJob,
      confirm_delete: confirmDelete,
      multi_input: multiInput,
      test_tool_with_task: withTask,
    },
    FIXTURE_TASK_SUPPORT,
  );
}
