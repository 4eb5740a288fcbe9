import {
  MissingRequiredClientCapabilityError,
  ProtocolError,
  ProtocolErrorCode,
  type Server,
  type ServerContext,
  type StandardSchemaV1,
} from "@modelcontextprotocol/server";
import { isSessionStoreError } from "../../errors.js";
import type { Task, TaskStore } from "../tasks.js";

/** The extension id servers advertise under `capabilities.extensions` and clients declare. */
export const TASKS_EXTENSION = "io.modelcontextprotocol/tasks";

/** `tasks/get` params. */
export interface TaskIdParams {
  taskId: string;
}

/** `tasks/update` params. */
export interface TaskUpdateParams extends TaskIdParams {
  inputResponses: Record<string, unknown>;
}

/** The empty ack `tasks/update` and `tasks/cancel` answer with. */
export type TaskAck = { resultType: "complete" };

/** The three task methods as plain functions of (params, principal), answering the spec's results. */
export interface TaskHandlers {
  "tasks/get"(params: unknown, principal: string): Promise<Record<string, unknown>>;
  "tasks/update"(params: unknown, principal: string): Promise<TaskAck>;
  "tasks/cancel"(params: unknown, principal: string): Promise<TaskAck>;
}

/**
 * The flat `CreateTaskResult` a task-supporting `tools/call` returns (after `tasks.create`
 * resolved, so the task is durable).
 *
 * @example return createTaskResult(await services.tasks.create({ principal }));
 */
export function createTaskResult(task: Task): Record<string, unknown> & { resultType: "task" } {
  return { resultType: "task", ...task };
}

/**
 * `tasks/get`, `tasks/update` and `tasks/cancel` over a {@link TaskStore}. Invalid params and
 * unknown, expired or foreign task ids throw the SDK's `ProtocolError` `-32602`; a backend
 * failure throws `-32603`.
 *
 * @example
 * const handlers = taskHandlers(services.tasks);
 * const task = await handlers["tasks/get"]({ taskId }, principal); // { resultType: "complete", status, ... }
 */
export function taskHandlers(tasks: TaskStore): TaskHandlers {
  return {
    "tasks/get": (params, principal) =>
      mapped(async () => ({
        resultType: "complete",
        ...(await tasks.get(taskIdOf(params), { principal })),
      })),
    "tasks/update": (params, principal) =>
      mapped(async () => {
        const { taskId, inputResponses } = updateParamsOf(params);
        await tasks.update(taskId, inputResponses, { principal });
        return ack();
      }),
    "tasks/cancel": (params, principal) =>
      mapped(async () => {
        await tasks.cancel(taskIdOf(params), { principal });
        return ack();
      }),
  };
}

/** Options of {@link registerTaskHandlers}. */
export interface RegisterTaskHandlersOptions {
  /** The principal of a request (for example `ctx.http?.authInfo?.clientId`); tasks are bound to it. */
  principal: (ctx: ServerContext) => string;
  /**
   * Answer `-32021` (Missing Required Client Capability) when the request did not declare the
   * tasks extension, as the extension requires. @default true
   */
  requireExtension?: boolean;
}

/**
 * Registers the three task methods on a low-level SDK v2 `Server` (`mcpServer.server`), for
 * servers built per request by `createMcpHandler`.
 *
 * @example
 * createMcpHandler(() => {
 *   const mcp = new McpServer(info, { capabilities: { extensions: { [TASKS_EXTENSION]: {} } } });
 *   registerTaskHandlers(mcp.server, services.tasks, { principal: (ctx) => ctx.http?.authInfo?.clientId ?? "anonymous" });
 *   return mcp;
 * });
 */
export function registerTaskHandlers(
  server: Server,
  tasks: TaskStore,
  options: RegisterTaskHandlersOptions,
): void {
  const handlers = taskHandlers(tasks);
  const requireExtension = options.requireExtension ?? true;
  for (const method of ["tasks/get", "tasks/update", "tasks/cancel"] as const) {
    server.setRequestHandler(method, { params: passThrough }, async (params, ctx) => {
      if (requireExtension && !declaresTasks(server)) {
        throw new MissingRequiredClientCapabilityError({
          requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } },
        } as ConstructorParameters<typeof MissingRequiredClientCapabilityError>[0]);
      }
      return handlers[method](withInputResponses(params, ctx), options.principal(ctx));
    });
  }
}

/** Params are checked by the handlers themselves, so one check serves both entry points. */
const passThrough: StandardSchemaV1<unknown, unknown> = {
  "~standard": { version: 1, vendor: "mcp-session-store", validate: (value) => ({ value }) },
};

/** The SDK lifts `inputResponses` out of every request's params; `tasks/update` needs them back. */
function withInputResponses(params: unknown, ctx: ServerContext): unknown {
  if (params === null || typeof params !== "object") return params;
  if ((params as Partial<TaskUpdateParams>).inputResponses !== undefined) return params;
  return { ...params, inputResponses: ctx.mcpReq.inputResponses ?? {} };
}

function declaresTasks(server: Server): boolean {
  const capabilities = server.getClientCapabilities() as
    | { extensions?: Record<string, unknown> }
    | undefined;
  return capabilities?.extensions?.[TASKS_EXTENSION] !== undefined;
}

function ack(): TaskAck {
  return { resultType: "complete" };
}

function invalidParams(message: string): ProtocolError {
  return new ProtocolError(ProtocolErrorCode.InvalidParams, message);
}

function taskIdOf(params: unknown): string {
  const taskId = (params as Partial<TaskIdParams> | null)?.taskId;
  if (typeof taskId !== "string") throw invalidParams("params.taskId must be a string");
  return taskId;
}

function updateParamsOf(params: unknown): TaskUpdateParams {
  const taskId = taskIdOf(params);
  const inputResponses = (params as Partial<TaskUpdateParams>).inputResponses;
  if (
    inputResponses === null ||
    typeof inputResponses !== "object" ||
    Array.isArray(inputResponses)
  ) {
    throw invalidParams("params.inputResponses must be an object");
  }
  return { taskId, inputResponses };
}

/** Store errors to the spec's JSON-RPC errors; the message never carries the task id. */
async function mapped<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    if (isSessionStoreError(err) && err.code === "ERR_INVALID_ARGUMENT") {
      throw invalidParams(
        err.details?.reason === "task_not_found" ? "Unknown taskId" : err.message,
      );
    }
    throw new ProtocolError(ProtocolErrorCode.InternalError, "Task store unavailable");
  }
}
