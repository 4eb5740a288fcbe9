import { createHash, randomBytes } from "node:crypto";
import type { Counter, Registry } from "prom-client";
import { ErrorCode, SessionStoreError } from "../../errors.js";
import { counter, safely } from "../support.js";
import { memoryBackend } from "./memory.js";
import { redisBackend } from "./redis.js";
import {
  type DetailedTask,
  type Fields,
  type Outcome,
  type Task,
  type TaskCaller,
  type TaskRun,
  type TaskStatus,
  type TaskStatusEvent,
  type TaskStore,
  type TaskStoreOptions,
  TERMINAL,
} from "./types.js";

const DEFAULTS = Object.freeze({ defaultTtl: 3600, pollIntervalMs: 1000 });
const STATUSES: ReadonlySet<string> = new Set([...TERMINAL, "working", "input_required"]);
const TASK_ID = /^[A-Za-z0-9_-]{22,64}$/;

/** A stored task: flat string fields, the same on both backends (`ir:<key>` open requests, `rs:<key>` answers). */

/**
 * Tasks shared by every instance: durable create, status transitions (a terminal status never
 * changes), input requests answered through `tasks/update`, cancellation carried over the bus
 * to the worker's `AbortSignal`, an expiry on every task, ids of 128 random bits bound to the
 * creating principal.
 *
 * @example
 * const tasks = createTaskStore({ redis: redisAccessOf(store), prefix: "mcp:", registry, logger: console, bus });
 * const task = await tasks.create({ principal });
 * void tasks.run(task.taskId, { principal }, async ({ signal }) => ({ content: [...] }));
 * return { resultType: "task", ...task };
 */
export function createTaskStore(options: TaskStoreOptions): TaskStore {
  const settings = resolve(options);
  const transitions = transitionCounter(options.registry);
  const backend = options.redis ? redisBackend(options.redis, options.prefix) : memoryBackend();
  const workers = new Map<string, Set<AbortController>>();
  const waiters = new Map<string, Set<() => void>>();
  let closed = false;

  const onEvent = (event: unknown) => {
    if (!isTaskEvent(event)) return;
    if (event.status === "cancelled") for (const c of workers.get(event.taskId) ?? []) c.abort();
    for (const wake of waiters.get(event.taskId) ?? []) wake();
  };
  const unsubscribe = options.bus?.subscribe(onEvent);

  const changed = (taskId: string, status: TaskStatus) => {
    safely(() => transitions.inc({ status }));
    const event: TaskStatusEvent = { kind: "task_status", taskId, status };
    // Local workers hear it at once, whatever the bus does with its own publisher.
    onEvent(event);
    try {
      options.bus?.publish(event);
    } catch (err) {
      options.logger.warn(`task status event not published: ${message(err)}`);
    }
  };
  const open = () => {
    if (closed) throw new SessionStoreError(ErrorCode.STORE_CLOSED, "The task store is closed");
  };
  const owner = (caller: TaskCaller) => principalHash(caller);

  /** Applies a transition; `missing` becomes the not-found error. */
  const transition = async (
    taskId: string,
    caller: TaskCaller,
    status: TaskStatus,
    fields: Fields,
  ): Promise<Outcome> => {
    open();
    const outcome = await backend.transition(
      checkTaskId(taskId),
      owner(caller),
      status,
      now(),
      fields,
    );
    if (outcome === "missing") throw notFound();
    if (outcome === "ok") changed(taskId, status);
    return outcome;
  };

  const store: TaskStore = {
    async create(caller, createOptions = {}) {
      open();
      const ttlMs =
        createOptions.ttlMs === undefined
          ? settings.ttlMs
          : positiveInt(createOptions.ttlMs, "ttlMs");
      const createdAt = now();
      const task: Task = {
        taskId: randomBytes(16).toString("base64url"),
        status: "working",
        createdAt,
        lastUpdatedAt: createdAt,
        ttlMs,
        pollIntervalMs: settings.pollIntervalMs,
      };
      if (createOptions.statusMessage !== undefined)
        task.statusMessage = createOptions.statusMessage;
      const fields: Fields = {
        principal: owner(caller),
        status: task.status,
        createdAt,
        lastUpdatedAt: createdAt,
        ttlMs: String(ttlMs),
        pollIntervalMs: String(task.pollIntervalMs),
      };
      if (task.statusMessage !== undefined) fields.statusMessage = task.statusMessage;
      await backend.create(task.taskId, fields, ttlMs);
      safely(() => transitions.inc({ status: "working" }));
      return task;
    },

    async get(taskId, caller) {
      open();
      const fields = await backend.read(checkTaskId(taskId));
      if (fields === null || fields.principal !== owner(caller)) throw notFound();
      return toDetailedTask(taskId, fields);
    },

    async update(taskId, inputResponses, caller) {
      open();
      if (
        inputResponses === null ||
        typeof inputResponses !== "object" ||
        Array.isArray(inputResponses)
      ) {
        throw new SessionStoreError(
          ErrorCode.INVALID_ARGUMENT,
          "tasks/update: inputResponses must be an object",
        );
      }
      const answers: Fields = {};
      for (const [key, value] of Object.entries(inputResponses))
        answers[key] = JSON.stringify(value ?? null);
      const outcome = await backend.answer(checkTaskId(taskId), owner(caller), now(), answers);
      if (outcome === "missing") throw notFound();
      if (outcome === "resumed") changed(taskId, "working");
    },

    async cancel(taskId, caller) {
      await transition(taskId, caller, "cancelled", {});
    },

    async complete(taskId, result, caller) {
      return (
        (await transition(taskId, caller, "completed", { result: JSON.stringify(result) })) === "ok"
      );
    },

    async fail(taskId, error, caller) {
      return (
        (await transition(taskId, caller, "failed", { error: JSON.stringify(error) })) === "ok"
      );
    },

    async run(taskId, caller, work) {
      const controller = new AbortController();
      const local = setIn(workers, taskId);
      local.add(controller);
      try {
        // A task cancelled (or ended) before its worker started is not worked on.
        if (TERMINAL.has((await store.get(taskId, caller)).status)) return;
        const result = await work(runContext(taskId, caller, controller.signal));
        if (!controller.signal.aborted) await store.complete(taskId, result, caller);
      } catch (err) {
        if (controller.signal.aborted) return;
        await store
          .fail(taskId, { code: -32603, message: message(err) }, caller)
          .catch((failure) =>
            options.logger.error(`task could not be marked failed: ${message(failure)}`),
          );
      } finally {
        local.delete(controller);
        if (local.size === 0) workers.delete(taskId);
      }
    },

    async close() {
      closed = true;
      unsubscribe?.();
      for (const set of workers.values()) for (const c of set) c.abort();
      for (const set of waiters.values()) for (const wake of set) wake();
      backend.close();
    },
  };

  function runContext(taskId: string, caller: TaskCaller, signal: AbortSignal): TaskRun {
    return {
      taskId,
      signal,
      async requestInput(inputRequests) {
        const fields: Fields = {};
        for (const [key, value] of Object.entries(inputRequests))
          fields[`ir:${key}`] = JSON.stringify(value);
        if (Object.keys(fields).length === 0) {
          throw new SessionStoreError(
            ErrorCode.INVALID_ARGUMENT,
            "requestInput needs at least one request",
          );
        }
        const outcome = await transition(taskId, caller, "input_required", fields);
        if (outcome !== "ok") throw aborted(signal);
        return waitForAnswers(taskId, caller, signal);
      },
      async progress(statusMessage) {
        await transition(taskId, caller, "working", { statusMessage });
      },
    };
  }

  /** Woken by status events; polls at the client's interval too, as an event may be lost. */
  async function waitForAnswers(taskId: string, caller: TaskCaller, signal: AbortSignal) {
    for (;;) {
      open();
      if (signal.aborted) throw aborted(signal);
      const answers = await backend.takeAnswers(checkTaskId(taskId), owner(caller));
      if (answers === null) throw notFound();
      // Ended (cancelled) before the answers came: the bus event may not have arrived yet.
      if (answers === "ended") throw aborted(signal);
      if (answers !== "pending") return answers;
      await new Promise<void>((resolveWait) => {
        const set = setIn(waiters, taskId);
        const wake = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", wake);
          set.delete(wake);
          if (set.size === 0) waiters.delete(taskId);
          resolveWait();
        };
        const timer = setTimeout(wake, settings.pollIntervalMs);
        signal.addEventListener("abort", wake);
        set.add(wake);
      });
    }
  }

  return store;
}

function resolve(options: TaskStoreOptions) {
  if (typeof options?.prefix !== "string") {
    throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "tasks: prefix must be a string");
  }
  const ttl = options.defaultTtl ?? DEFAULTS.defaultTtl;
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0) {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      "tasks: defaultTtl must be a positive number of seconds",
    );
  }
  return {
    ttlMs: Math.ceil(ttl * 1000),
    pollIntervalMs: positiveInt(
      options.pollIntervalMs ?? DEFAULTS.pollIntervalMs,
      "pollIntervalMs",
    ),
  };
}

function positiveInt(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      `tasks: ${field} must be a positive integer`,
    );
  }
  return value;
}

function principalHash(caller: TaskCaller): string {
  if (caller === null || typeof caller !== "object" || typeof caller.principal !== "string") {
    throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "tasks: principal must be a string");
  }
  // Only a digest is stored: Redis never holds who the principal is.
  return createHash("sha256").update(caller.principal).digest("base64url");
}

function checkTaskId(taskId: unknown): string {
  // A malformed id is answered like an unknown one: the client learns nothing more.
  if (typeof taskId !== "string" || !TASK_ID.test(taskId)) throw notFound();
  return taskId;
}

function notFound(): SessionStoreError {
  return new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "Unknown task", {
    details: { reason: "task_not_found" },
  });
}

function aborted(signal: AbortSignal): SessionStoreError {
  return new SessionStoreError(ErrorCode.ABORTED, "The task was cancelled", {
    cause: signal.reason,
  });
}

function isTaskEvent(event: unknown): event is TaskStatusEvent {
  const e = event as Partial<TaskStatusEvent> | null;
  return (
    typeof e === "object" &&
    e !== null &&
    e.kind === "task_status" &&
    typeof e.taskId === "string" &&
    typeof e.status === "string" &&
    STATUSES.has(e.status)
  );
}

function toDetailedTask(taskId: string, fields: Fields): DetailedTask {
  const task: DetailedTask = {
    taskId,
    status: fields.status as TaskStatus,
    createdAt: fields.createdAt ?? "",
    lastUpdatedAt: fields.lastUpdatedAt ?? "",
    ttlMs: Number(fields.ttlMs),
    pollIntervalMs: Number(fields.pollIntervalMs),
  };
  if (fields.statusMessage !== undefined) task.statusMessage = fields.statusMessage;
  if (task.status === "completed" && fields.result !== undefined)
    task.result = JSON.parse(fields.result);
  if (task.status === "failed" && fields.error !== undefined) task.error = JSON.parse(fields.error);
  if (task.status === "input_required") {
    const requests: Record<string, unknown> = {};
    for (const [field, value] of Object.entries(fields)) {
      if (field.startsWith("ir:")) requests[field.slice(3)] = JSON.parse(value);
    }
    task.inputRequests = requests;
  }
  return task;
}

function transitionCounter(registry: Registry): Counter<"status"> {
  return counter(
    registry,
    "mcp_session_store_task_transitions_total",
    "Task status transitions (creation counts as working), by new status.",
    ["status"] as const,
  );
}

/** The set under `key`, created on first use. */
function setIn<T>(map: Map<string, Set<T>>, key: string): Set<T> {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  return set;
}

const now = () => new Date().toISOString();
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
