import type {
  CreateTaskOptions,
  TaskStore,
} from "@modelcontextprotocol/sdk/experimental/tasks/interfaces.js";
import type { Request, RequestId, Result, Task } from "@modelcontextprotocol/sdk/types.js";
import type { Registry } from "prom-client";
import { hashId } from "../../../codec.js";
import { ErrorCode, SessionStoreError } from "../../../errors.js";
import { type McpMetrics, mcpMetrics, safely } from "../../support.js";
import {
  checkTaskId,
  invalidCursor,
  newTask,
  notFound,
  type ResolvedTaskOptions,
  TERMINAL,
  terminal,
  UNBOUND,
} from "./shared.js";

interface MemoryTask {
  task: Task;
  result?: Result;
  request: Request;
  requestId: RequestId;
  expiresAt: number;
}

/** The memory twin of `RedisTaskStore`: same binding, transitions, expiry and pages. */
export class MemoryTaskStore implements TaskStore {
  /** namespace (session id or UNBOUND) -> tasks in creation order. */
  private readonly spaces = new Map<string, Map<string, MemoryTask>>();
  private readonly metrics: McpMetrics | undefined;
  private writes = 0;

  constructor(
    private readonly options: ResolvedTaskOptions,
    registry?: Registry,
  ) {
    this.metrics = registry === undefined ? undefined : mcpMetrics(registry);
  }

  private live(space: string, taskId: string, now = Date.now()): MemoryTask | undefined {
    const tasks = this.spaces.get(space);
    const stored = tasks?.get(taskId);
    if (stored !== undefined && stored.expiresAt <= now) {
      tasks?.delete(taskId);
      return undefined;
    }
    return stored;
  }

  private find(taskId: string, sessionId: string | undefined): MemoryTask | undefined {
    checkTaskId(taskId);
    return (
      this.live(sessionId ?? UNBOUND, taskId) ??
      (sessionId === undefined ? undefined : this.live(UNBOUND, taskId))
    );
  }

  async createTask(
    taskParams: CreateTaskOptions,
    requestId: RequestId,
    request: Request,
    sessionId?: string,
  ): Promise<Task> {
    const now = Date.now();
    if (++this.writes % 256 === 0) this.sweep(now);
    const task = newTask(taskParams, now);
    const { taskId, ttl } = task;
    const space = sessionId ?? UNBOUND;
    let tasks = this.spaces.get(space);
    if (tasks === undefined) {
      tasks = new Map();
      this.spaces.set(space, tasks);
    }
    // Stored as JSON copies, like Redis: callers never share objects with the store.
    tasks.set(taskId, {
      task: { ...task },
      request: structuredClone(request),
      requestId,
      expiresAt: now + Math.max(1, Math.ceil(ttl ?? this.options.taskTtlMs)),
    });
    safely(() => this.metrics?.tasksCreated.inc({ status: task.status }));
    return task;
  }

  async getTask(taskId: string, sessionId?: string): Promise<Task | null> {
    const stored = this.find(taskId, sessionId);
    return stored === undefined ? null : { ...stored.task };
  }

  private transition(
    taskId: string,
    sessionId: string | undefined,
    status: Task["status"],
    statusMessage: string | undefined,
    result: Result | undefined,
  ): void {
    const stored = this.find(taskId, sessionId);
    if (stored === undefined) throw notFound(taskId);
    if (TERMINAL.has(stored.task.status)) throw terminal(taskId, stored.task.status, status);
    stored.task.status = status;
    if (statusMessage) stored.task.statusMessage = statusMessage;
    if (result !== undefined) stored.result = JSON.parse(JSON.stringify(result)) as Result;
    stored.task.lastUpdatedAt = new Date().toISOString();
    if (TERMINAL.has(status)) {
      stored.expiresAt =
        Date.now() + Math.max(1, Math.ceil(stored.task.ttl ?? this.options.taskTtlMs));
      safely(() => this.metrics?.tasksFinished.inc({ status }));
    }
  }

  async storeTaskResult(
    taskId: string,
    status: "completed" | "failed",
    result: Result,
    sessionId?: string,
  ): Promise<void> {
    this.transition(taskId, sessionId, status, undefined, result);
  }

  async getTaskResult(taskId: string, sessionId?: string): Promise<Result> {
    const stored = this.find(taskId, sessionId);
    if (stored === undefined) throw notFound(taskId);
    if (stored.result === undefined) {
      throw new SessionStoreError(
        ErrorCode.INVALID_ARGUMENT,
        `Task (hash ${hashId(taskId)}) has no result yet`,
      );
    }
    return JSON.parse(JSON.stringify(stored.result)) as Result;
  }

  async updateTaskStatus(
    taskId: string,
    status: Task["status"],
    statusMessage?: string,
    sessionId?: string,
  ): Promise<void> {
    this.transition(taskId, sessionId, status, statusMessage, undefined);
  }

  async listTasks(
    cursor?: string,
    sessionId?: string,
  ): Promise<{ tasks: Task[]; nextCursor?: string }> {
    const space = sessionId ?? UNBOUND;
    const now = Date.now();
    const ids: string[] = [];
    for (const taskId of this.spaces.get(space)?.keys() ?? []) {
      if (this.live(space, taskId, now) !== undefined) ids.push(taskId);
    }
    let start = 0;
    if (cursor !== undefined) {
      const at = ids.indexOf(checkTaskId(cursor));
      if (at < 0) throw invalidCursor();
      start = at + 1;
    }
    const size = this.options.pageSize;
    const page = ids.slice(start, start + size);
    const stored = this.spaces.get(space) ?? new Map<string, MemoryTask>();
    const tasks = page.map((id) => ({ ...(stored.get(id) as MemoryTask).task }));
    const result: { tasks: Task[]; nextCursor?: string } = { tasks };
    if (start + size < ids.length) result.nextCursor = page[page.length - 1] as string;
    return result;
  }

  private sweep(now: number): void {
    for (const [space, tasks] of this.spaces) {
      for (const [id, stored] of tasks) if (stored.expiresAt <= now) tasks.delete(id);
      if (tasks.size === 0) this.spaces.delete(space);
    }
  }

  /** Drops everything (the services call it on close). */
  clear(): void {
    this.spaces.clear();
  }
}
