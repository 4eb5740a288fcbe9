import type { Registry } from "prom-client";
import type { Logger } from "../../types.js";
import type { RedisAccess } from "../support.js";

/** Task statuses of the tasks extension (`io.modelcontextprotocol/tasks`). */
export type TaskStatus = "working" | "input_required" | "completed" | "failed" | "cancelled";

/** A task as `CreateTaskResult` and `tasks/get` show it (times ISO 8601, durations in ms). */
export interface Task {
  taskId: string;
  status: TaskStatus;
  statusMessage?: string;
  createdAt: string;
  lastUpdatedAt: string;
  ttlMs: number;
  pollIntervalMs: number;
}

/** A JSON-RPC error object, inlined on a failed task. */
export interface TaskError {
  code: number;
  message: string;
  data?: unknown;
}

/** `tasks/get`'s DetailedTask: the result once completed, the error once failed, open input requests. */
export interface DetailedTask extends Task {
  result?: Record<string, unknown>;
  error?: TaskError;
  inputRequests?: Record<string, unknown>;
}

/** A task status change, published on the bus (`subscriptions/listen` streams, cancellation). */
export interface TaskStatusEvent {
  kind: "task_status";
  taskId: string;
  status: TaskStatus;
}

/** Any bus with the SDK's `ServerEventBus` shape; task events travel beside the SDK's own. */
export interface TaskEventBus {
  publish(event: TaskStatusEvent): void;
  subscribe(listener: (event: unknown) => void): () => void;
}

/** Options of {@link createTaskStore}. */
export interface TaskStoreOptions {
  /** The Redis behind the session store (`redisAccessOf(store)`); `undefined` keeps tasks in memory. */
  redis: RedisAccess | undefined;
  /** Key prefix; tasks live under `<prefix>task:{<taskId>}`. */
  prefix: string;
  registry: Registry;
  logger: Logger;
  /** Carries status changes to other instances (cancellation, listen streams). @default none: this process only */
  bus?: TaskEventBus;
  /** Seconds a task stays readable after its creation. @default 3600 */
  defaultTtl?: number;
  /** Polling interval suggested to clients, in ms. @default 1000 */
  pollIntervalMs?: number;
}

/** Who asks: a task of another principal looks exactly like an unknown one. */
export interface TaskCaller {
  principal: string;
}

/** What a worker gets from {@link TaskStore.run}. */
export interface TaskRun {
  readonly taskId: string;
  /** Aborted when the task is cancelled, on whichever instance `tasks/cancel` arrived. */
  readonly signal: AbortSignal;
  /** Parks the task in `input_required` until every request is answered; resolves with the responses. */
  requestInput(inputRequests: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Sets the status message while working. */
  progress(statusMessage: string): Promise<void>;
}

/** The task store of the tasks extension (SEP-2663), on Redis or in memory. */
export interface TaskStore {
  /** Creates a task in `working`; resolves once it is durably stored (the Redis write acknowledged). */
  create(caller: TaskCaller, options?: { ttlMs?: number; statusMessage?: string }): Promise<Task>;
  /** `tasks/get`. Throws `ERR_INVALID_ARGUMENT` with `details.reason: "task_not_found"` if unknown, foreign or expired. */
  get(taskId: string, caller: TaskCaller): Promise<DetailedTask>;
  /** `tasks/update`: answers open input requests (unknown keys are ignored). */
  update(
    taskId: string,
    inputResponses: Record<string, unknown>,
    caller: TaskCaller,
  ): Promise<void>;
  /** `tasks/cancel`: idempotent on a terminal task; the worker's signal aborts. */
  cancel(taskId: string, caller: TaskCaller): Promise<void>;
  /** Stores the result (status `completed`); false if the task had already ended (cancelled). */
  complete(taskId: string, result: Record<string, unknown>, caller: TaskCaller): Promise<boolean>;
  /** Stores a protocol-level error (status `failed`); false if the task had already ended. */
  fail(taskId: string, error: TaskError, caller: TaskCaller): Promise<boolean>;
  /**
   * Runs `work` for a task: its return value completes the task, a throw fails it (code -32603),
   * a cancellation aborts `run.signal` and drops whatever `work` returns.
   */
  run(
    taskId: string,
    caller: TaskCaller,
    work: (run: TaskRun) => Promise<Record<string, unknown>>,
  ): Promise<void>;
  close(): Promise<void>;
}

/** Statuses a task never leaves. */
export const TERMINAL: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);

/** A task as stored: a flat hash of strings. */
export type Fields = Record<string, string>;
/** What a backend answers to a guarded change. */
export type Outcome = "ok" | "missing" | `terminal:${string}` | `status:${string}` | "resumed";

/** Backends: one semantics, written once in Lua for Redis (`redis.ts`) and once in JavaScript for memory (`memory.ts`). */
export interface Backend {
  create(taskId: string, fields: Fields, ttlMs: number): Promise<void>;
  read(taskId: string): Promise<Fields | null>;
  /** Moves a live task of `owner` to `status` with `fields`; leaving input_required clears requests and answers. */
  transition(
    taskId: string,
    owner: string,
    status: TaskStatus,
    at: string,
    fields: Fields,
  ): Promise<Outcome>;
  /** Answers open requests; `resumed` when none is left open. */
  answer(taskId: string, owner: string, at: string, answers: Fields): Promise<Outcome>;
  /** The answers once no request is open (and clears them); `pending` before, `ended` once terminal, `null` if gone. */
  takeAnswers(
    taskId: string,
    owner: string,
  ): Promise<Record<string, unknown> | "pending" | "ended" | null>;
  close(): void;
}
