import { randomBytes } from "node:crypto";
import type { CreateTaskOptions } from "@modelcontextprotocol/sdk/experimental/tasks/interfaces.js";
import type { Task } from "@modelcontextprotocol/sdk/types.js";
import type { Registry } from "prom-client";
import { hashId } from "../../../codec.js";
import { ErrorCode, SessionStoreError } from "../../../errors.js";
import { checkTtl } from "../../../options.js";
import { isValidId } from "../../support.js";

/** Namespace of tasks created without a session (stateless servers). */
export const UNBOUND = "~unbound";
export const TERMINAL = new Set(["completed", "failed", "cancelled"]);
/** Task ids share a key with the session id: at most 256 characters. */
const MAX_TASK_ID = 256;

/** Options of the task store and queue. */
export interface McpTaskStoreOptions {
  /**
   * Seconds a task lives when it was created without a `ttl` (the SDK's "unlimited"): every key
   * gets an expiry. @default the store's `defaultTtl` (3600)
   */
  taskTtl?: number;
  /** Tasks per `listTasks` page. @default 10 */
  taskPageSize?: number;
  /** Seconds a task's message queue lives after its last write. @default the store's `defaultTtl` */
  queueTtl?: number;
  /** Largest queue, whatever the SDK asks (`maxTaskQueueSize` applies too). @default 1000 */
  maxQueueSize?: number;
  registry?: Registry;
}

export interface ResolvedTaskOptions {
  taskTtlMs: number;
  pageSize: number;
  queueTtlMs: number;
  maxQueueSize: number;
}

export function notFound(taskId: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.INVALID_ARGUMENT,
    `Task not found (hash ${hashId(taskId)})`,
  );
}

export function terminal(taskId: string, status: string, next: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.CONFLICT,
    `Task (hash ${hashId(taskId)}) is in terminal status '${status}' and cannot become '${next}'`,
    { details: { status } },
  );
}

export function checkTaskId(taskId: unknown): string {
  if (!isValidId(taskId, MAX_TASK_ID)) {
    throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "Invalid task id");
  }
  return taskId;
}

export function invalidCursor(): SessionStoreError {
  return new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "Invalid cursor");
}

/** A new task in status "working": the same shape on both backends. */
export function newTask(taskParams: CreateTaskOptions, now: number): Task {
  const createdAt = new Date(now).toISOString();
  return {
    taskId: randomBytes(16).toString("hex"),
    status: "working",
    ttl: taskParams.ttl ?? null,
    createdAt,
    lastUpdatedAt: createdAt,
    pollInterval: taskParams.pollInterval ?? 1000,
  };
}

/** Validates the task options and applies their defaults. */
export function resolveTaskOptions(
  options: McpTaskStoreOptions & { defaultTtl?: number },
): ResolvedTaskOptions {
  const fallbackTtl = options.defaultTtl ?? 3600;
  const pageSize = options.taskPageSize ?? 10;
  const maxQueueSize = options.maxQueueSize ?? 1000;
  for (const [name, value] of [
    ["taskPageSize", pageSize],
    ["maxQueueSize", maxQueueSize],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new SessionStoreError(
        ErrorCode.INVALID_ARGUMENT,
        `Invalid option "${name}": expected an integer >= 1, got ${String(value)}`,
        { details: { option: name } },
      );
    }
  }
  return {
    taskTtlMs: checkTtl(options.taskTtl ?? fallbackTtl, "taskTtl") * 1000,
    queueTtlMs: checkTtl(options.queueTtl ?? fallbackTtl, "queueTtl") * 1000,
    pageSize,
    maxQueueSize,
  };
}
