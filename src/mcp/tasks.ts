import { createHash, randomBytes } from "node:crypto";
import type { Counter, Registry } from "prom-client";
import { ErrorCode, SessionStoreError } from "../errors.js";
import type { Logger } from "../types.js";
import {
  counter,
  type LuaScript,
  luaScript,
  type RedisAccess,
  redisCall,
  runScript,
  safely,
} from "./support.js";

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

const DEFAULTS = Object.freeze({ defaultTtl: 3600, pollIntervalMs: 1000 });
const TERMINAL: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);
const STATUSES: ReadonlySet<string> = new Set([...TERMINAL, "working", "input_required"]);
const TASK_ID = /^[A-Za-z0-9_-]{22,64}$/;

/** A stored task: flat string fields, the same on both backends (`ir:<key>` open requests, `rs:<key>` answers). */
type Fields = Record<string, string>;
type Outcome = "ok" | "missing" | `terminal:${string}` | `status:${string}` | "resumed";

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

// ------------------------------------------------------------------------------------------------
// Backends: one semantics, written once in Lua for Redis and once in JavaScript for memory.

interface Backend {
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

const CREATE = luaScript(
  "mssTaskCreate",
  1,
  `
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`,
);

// Shared prologue: the owner check makes a foreign task indistinguishable from a missing one.
const GUARD = `
local owner = redis.call('HGET', KEYS[1], 'principal')
if not owner or owner ~= ARGV[1] then return 'missing' end
local status = redis.call('HGET', KEYS[1], 'status')
`;

const CLEAR_INPUT = `
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  local p = string.sub(f, 1, 3)
  if p == 'ir:' or p == 'rs:' then redis.call('HDEL', KEYS[1], f) end
end
`;

// ARGV: owner, status, at, field pairs...
const TRANSITION = luaScript(
  "mssTaskTransition",
  1,
  `${GUARD}
if status == 'completed' or status == 'failed' or status == 'cancelled' then return 'terminal:' .. status end
if ARGV[2] ~= 'input_required' then ${CLEAR_INPUT} end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'lastUpdatedAt', ARGV[3], unpack(ARGV, 4))
return 'ok'
`,
);

// ARGV: owner, at, key/answer pairs...
const ANSWER = luaScript(
  "mssTaskAnswer",
  1,
  `${GUARD}
if status ~= 'input_required' then return 'status:' .. status end
local answered = 0
for i = 3, #ARGV, 2 do
  if redis.call('HDEL', KEYS[1], 'ir:' .. ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], 'rs:' .. ARGV[i], ARGV[i + 1])
    answered = answered + 1
  end
end
if answered == 0 then return 'ok' end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 3) == 'ir:' then
    redis.call('HSET', KEYS[1], 'lastUpdatedAt', ARGV[2])
    return 'ok'
  end
end
redis.call('HSET', KEYS[1], 'status', 'working', 'lastUpdatedAt', ARGV[2])
return 'resumed'
`,
);

// ARGV: owner. Returns a flat key/answer list, 'pending' or 'ended'.
const TAKE_ANSWERS = luaScript(
  "mssTaskTakeAnswers",
  1,
  `${GUARD}
if status == 'input_required' then return 'pending' end
if status == 'completed' or status == 'failed' or status == 'cancelled' then return 'ended' end
local out = {}
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 3) == 'rs:' then
    table.insert(out, string.sub(f, 4))
    table.insert(out, redis.call('HGET', KEYS[1], f))
    redis.call('HDEL', KEYS[1], f)
  end
end
return out
`,
);

function pairs(fields: Fields): string[] {
  return Object.entries(fields).flat();
}

function redisBackend(access: RedisAccess, prefix: string): Backend {
  const key = (taskId: string) => `${prefix}task:{${taskId}}`;
  const run = (what: string, script: LuaScript, taskId: string, args: string[]) =>
    redisCall(access, what, () => runScript(access.client, script, [key(taskId)], args));
  return {
    async create(taskId, fields, ttlMs) {
      await run("create task", CREATE, taskId, [String(ttlMs), ...pairs(fields)]);
    },
    async read(taskId) {
      const fields = await redisCall(access, "read task", () => access.client.hgetall(key(taskId)));
      return Object.keys(fields).length === 0 ? null : fields;
    },
    async transition(taskId, owner, status, at, fields) {
      return (await run("task transition", TRANSITION, taskId, [
        owner,
        status,
        at,
        ...pairs(fields),
      ])) as Outcome;
    },
    async answer(taskId, owner, at, answers) {
      return (await run("tasks/update", ANSWER, taskId, [owner, at, ...pairs(answers)])) as Outcome;
    },
    async takeAnswers(taskId, owner) {
      const reply = await run("take task answers", TAKE_ANSWERS, taskId, [owner]);
      if (reply === "missing") return null;
      if (reply === "pending" || reply === "ended") return reply;
      const list = reply as string[];
      const answers: Record<string, unknown> = {};
      for (let i = 0; i < list.length; i += 2)
        answers[list[i] as string] = JSON.parse(list[i + 1] as string);
      return answers;
    },
    close() {},
  };
}

function memoryBackend(): Backend {
  const tasks = new Map<string, { fields: Fields; expiresAt: number }>();
  let nextSweep = 0;
  const live = (taskId: string, owner?: string): Fields | null => {
    const at = Date.now();
    if (at >= nextSweep) {
      // At most one sweep a second: no timer to leak, bounded work.
      nextSweep = at + 1000;
      for (const [id, entry] of tasks) if (entry.expiresAt <= at) tasks.delete(id);
    }
    const entry = tasks.get(taskId);
    if (entry === undefined || entry.expiresAt <= at) return null;
    if (owner !== undefined && entry.fields.principal !== owner) return null;
    return entry.fields;
  };
  const dropInput = (fields: Fields, prefixes: string[]) => {
    for (const f of Object.keys(fields)) if (prefixes.includes(f.slice(0, 3))) delete fields[f];
  };
  return {
    async create(taskId, fields, ttlMs) {
      tasks.set(taskId, { fields: { ...fields }, expiresAt: Date.now() + ttlMs });
    },
    async read(taskId) {
      const fields = live(taskId);
      return fields === null ? null : { ...fields };
    },
    async transition(taskId, owner, status, at, extra) {
      const fields = live(taskId, owner);
      if (fields === null) return "missing";
      if (TERMINAL.has(fields.status as string)) return `terminal:${fields.status}`;
      if (status !== "input_required") dropInput(fields, ["ir:", "rs:"]);
      Object.assign(fields, extra, { status, lastUpdatedAt: at });
      return "ok";
    },
    async answer(taskId, owner, at, answers) {
      const fields = live(taskId, owner);
      if (fields === null) return "missing";
      if (fields.status !== "input_required") return `status:${fields.status}`;
      let answered = 0;
      for (const [k, v] of Object.entries(answers)) {
        if (fields[`ir:${k}`] === undefined) continue;
        delete fields[`ir:${k}`];
        fields[`rs:${k}`] = v;
        answered++;
      }
      if (answered === 0) return "ok";
      fields.lastUpdatedAt = at;
      if (Object.keys(fields).some((f) => f.startsWith("ir:"))) return "ok";
      fields.status = "working";
      return "resumed";
    },
    async takeAnswers(taskId, owner) {
      const fields = live(taskId, owner);
      if (fields === null) return null;
      if (fields.status === "input_required") return "pending";
      if (TERMINAL.has(fields.status as string)) return "ended";
      const answers: Record<string, unknown> = {};
      for (const [f, v] of Object.entries(fields))
        if (f.startsWith("rs:")) answers[f.slice(3)] = JSON.parse(v);
      dropInput(fields, ["rs:"]);
      return answers;
    },
    close() {
      tasks.clear();
    },
  };
}
