import { randomBytes } from "node:crypto";
import type {
  CreateTaskOptions,
  QueuedMessage,
  TaskMessageQueue,
  TaskStore,
} from "@modelcontextprotocol/sdk/experimental/tasks/interfaces.js";
import type { Request, RequestId, Result, Task } from "@modelcontextprotocol/sdk/types.js";
import type { Registry } from "prom-client";
import { hashId } from "../codec.js";
import { ErrorCode, SessionStoreError } from "../errors.js";
import { checkTtl } from "../options.js";
import {
  luaScript,
  type McpMetrics,
  mcpMetrics,
  type RedisAccess,
  redisCall,
  runScript,
  safely,
} from "./support.js";

/** Namespace of tasks created without a session (stateless servers). */
const UNBOUND = "~unbound";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const TASK_ID = /^[\x21-\x7e]{1,256}$/;

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

interface ResolvedTaskOptions {
  taskTtlMs: number;
  pageSize: number;
  queueTtlMs: number;
  maxQueueSize: number;
}

function notFound(taskId: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.INVALID_ARGUMENT,
    `Task not found (hash ${hashId(taskId)})`,
  );
}

function terminal(taskId: string, status: string, next: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.CONFLICT,
    `Task (hash ${hashId(taskId)}) is in terminal status '${status}' and cannot become '${next}'`,
    { details: { status } },
  );
}

function checkTaskId(taskId: unknown): string {
  if (typeof taskId !== "string" || !TASK_ID.test(taskId)) {
    throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "Invalid task id");
  }
  return taskId;
}

function invalidCursor(): SessionStoreError {
  return new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "Invalid cursor");
}

// ------------------------------------------------------------------------------------------------
// Redis

const CREATE = luaScript(
  "mssV1TaskCreate",
  2,
  `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return 1
`,
);

// ARGV: status, statusMessage ('' keeps it), lastUpdatedAt, result ('' for none), fallback ttl ms.
// A terminal status never changes; reaching one restarts the expiry, as the SDK's store does.
const TRANSITION = luaScript(
  "mssV1TaskTransition",
  2,
  `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'completed' or status == 'failed' or status == 'cancelled' then return 'terminal:' .. status end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'lastUpdatedAt', ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'statusMessage', ARGV[2]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'result', ARGV[4]) end
if ARGV[1] == 'completed' or ARGV[1] == 'failed' or ARGV[1] == 'cancelled' then
  local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl')) or tonumber(ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ttl)
  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return 'ok'
`,
);

// ARGV: max size, ttl ms, message. Size check and push in one step.
const ENQUEUE = luaScript(
  "mssV1TaskEnqueue",
  1,
  `
local n = redis.call('LLEN', KEYS[1])
if n >= tonumber(ARGV[1]) then return -1 - n end
n = redis.call('RPUSH', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
`,
);

function toTask(hash: Record<string, string>): Task {
  const task: Task = {
    taskId: hash.taskId as string,
    status: hash.status as Task["status"],
    ttl: hash.ttl === undefined || hash.ttl === "" ? null : Number(hash.ttl),
    createdAt: hash.createdAt as string,
    lastUpdatedAt: hash.lastUpdatedAt as string,
  };
  if (hash.pollInterval !== undefined && hash.pollInterval !== "") {
    task.pollInterval = Number(hash.pollInterval);
  }
  if (hash.statusMessage !== undefined) task.statusMessage = hash.statusMessage;
  return task;
}

/**
 * The SDK's experimental `TaskStore` on Redis. A task created in a session lives under that
 * session's hash tag (`{prefix}{<sessionId>}:task:<taskId>`), so another session computes another
 * key and cannot see it; status transitions are Lua scripts (a terminal status never changes);
 * every key has an expiry.
 */
/** A new task in status "working": the same shape on both backends. */
function newTask(taskParams: CreateTaskOptions, now: number): Task {
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

export class RedisTaskStore implements TaskStore {
  private readonly metrics: McpMetrics | undefined;

  constructor(
    private readonly redis: RedisAccess,
    private readonly options: ResolvedTaskOptions,
    registry?: Registry,
  ) {
    this.metrics = registry === undefined ? undefined : mcpMetrics(registry);
  }

  private taskKey(sessionId: string | undefined, taskId: string): string {
    return this.redis.key(sessionId ?? UNBOUND, `task:${taskId}`);
  }

  private indexKey(sessionId: string | undefined): string {
    return this.redis.key(sessionId ?? UNBOUND, "tasks");
  }

  async createTask(
    taskParams: CreateTaskOptions,
    requestId: RequestId,
    request: Request,
    sessionId?: string,
  ): Promise<Task> {
    const now = Date.now();
    const task = newTask(taskParams, now);
    const { taskId, ttl, createdAt } = task;
    const expiryMs = ttl ?? this.options.taskTtlMs;
    const fields = [
      "taskId",
      taskId,
      "status",
      task.status,
      "ttl",
      ttl === null ? "" : String(ttl),
      "createdAt",
      createdAt,
      "lastUpdatedAt",
      createdAt,
      "pollInterval",
      String(task.pollInterval),
      "requestId",
      JSON.stringify(requestId),
      "request",
      JSON.stringify(request),
    ];
    const created = await redisCall(this.redis, "task create", () =>
      runScript(
        this.redis.client,
        CREATE,
        [this.taskKey(sessionId, taskId), this.indexKey(sessionId)],
        [Math.max(1, Math.ceil(expiryMs)), now, taskId, ...fields],
      ),
    );
    if (created !== 1) {
      throw new SessionStoreError(ErrorCode.CONFLICT, "Task id already exists");
    }
    safely(() => this.metrics?.tasksCreated.inc({ status: task.status }));
    return task;
  }

  /** The key holding the task for this caller, or undefined. */
  private async locate(taskId: string, sessionId: string | undefined): Promise<string | undefined> {
    checkTaskId(taskId);
    const own = this.taskKey(sessionId, taskId);
    if ((await redisCall(this.redis, "EXISTS", () => this.redis.client.exists(own))) === 1)
      return own;
    if (sessionId === undefined) return undefined;
    // Tasks created without a session are visible to every session, as in the SDK's store.
    const shared = this.taskKey(undefined, taskId);
    const found = await redisCall(this.redis, "EXISTS", () => this.redis.client.exists(shared));
    return found === 1 ? shared : undefined;
  }

  async getTask(taskId: string, sessionId?: string): Promise<Task | null> {
    checkTaskId(taskId);
    const own = this.taskKey(sessionId, taskId);
    let hash = await redisCall(this.redis, "HGETALL", () => this.redis.client.hgetall(own));
    if (hash.status === undefined && sessionId !== undefined) {
      const shared = this.taskKey(undefined, taskId);
      hash = await redisCall(this.redis, "HGETALL", () => this.redis.client.hgetall(shared));
    }
    return hash.status === undefined ? null : toTask(hash);
  }

  private async transition(
    taskId: string,
    sessionId: string | undefined,
    status: Task["status"],
    statusMessage: string | undefined,
    result: Result | undefined,
  ): Promise<void> {
    const key = await this.locate(taskId, sessionId);
    if (key === undefined) throw notFound(taskId);
    const indexKey =
      key === this.taskKey(sessionId, taskId) ? this.indexKey(sessionId) : this.indexKey(undefined);
    const outcome = await redisCall(this.redis, "task transition", () =>
      runScript(
        this.redis.client,
        TRANSITION,
        [key, indexKey],
        [
          status,
          statusMessage ?? "",
          new Date().toISOString(),
          result === undefined ? "" : JSON.stringify(result),
          Math.ceil(this.options.taskTtlMs),
        ],
      ),
    );
    if (outcome === "missing") throw notFound(taskId);
    if (typeof outcome === "string" && outcome.startsWith("terminal:")) {
      throw terminal(taskId, outcome.slice("terminal:".length), status);
    }
    if (TERMINAL.has(status)) safely(() => this.metrics?.tasksFinished.inc({ status }));
  }

  async storeTaskResult(
    taskId: string,
    status: "completed" | "failed",
    result: Result,
    sessionId?: string,
  ): Promise<void> {
    await this.transition(taskId, sessionId, status, undefined, result);
  }

  async getTaskResult(taskId: string, sessionId?: string): Promise<Result> {
    const key = await this.locate(taskId, sessionId);
    if (key === undefined) throw notFound(taskId);
    const json = await redisCall(this.redis, "HGET", () => this.redis.client.hget(key, "result"));
    if (json === null) {
      throw new SessionStoreError(
        ErrorCode.INVALID_ARGUMENT,
        `Task (hash ${hashId(taskId)}) has no result yet`,
      );
    }
    return JSON.parse(json) as Result;
  }

  async updateTaskStatus(
    taskId: string,
    status: Task["status"],
    statusMessage?: string,
    sessionId?: string,
  ): Promise<void> {
    await this.transition(taskId, sessionId, status, statusMessage, undefined);
  }

  async listTasks(
    cursor?: string,
    sessionId?: string,
  ): Promise<{ tasks: Task[]; nextCursor?: string }> {
    const index = this.indexKey(sessionId);
    const client = this.redis.client;
    let start = 0;
    if (cursor !== undefined) {
      checkTaskId(cursor);
      const rank = await redisCall(this.redis, "ZRANK", () => client.zrank(index, cursor));
      if (rank === null) throw invalidCursor();
      start = rank + 1;
    }
    const size = this.options.pageSize;
    // One extra id tells whether another page follows.
    const ids = await redisCall(this.redis, "ZRANGE", () =>
      client.zrange(index, String(start), String(start + size)),
    );
    const page = ids.slice(0, size);
    const hashes = await Promise.all(
      page.map((id) =>
        redisCall(this.redis, "HGETALL", () => client.hgetall(this.taskKey(sessionId, id))),
      ),
    );
    const tasks: Task[] = [];
    const expired: string[] = [];
    hashes.forEach((hash, i) => {
      if (hash.status === undefined) expired.push(page[i] as string);
      else tasks.push(toTask(hash));
    });
    if (expired.length > 0) {
      // Index entries outlive their task (it expired): drop them. The cursor of this page stays
      // valid because it is the last id, and only expired ids are removed.
      const last = page[page.length - 1];
      const keep = expired.filter((id) => id !== last);
      if (keep.length > 0) await redisCall(this.redis, "ZREM", () => client.zrem(index, ...keep));
    }
    const result: { tasks: Task[]; nextCursor?: string } = { tasks };
    if (ids.length > size) result.nextCursor = page[page.length - 1] as string;
    return result;
  }
}

/**
 * The SDK's experimental `TaskMessageQueue` on Redis: one list per task under the session's hash
 * tag, FIFO, size check and push in one script, expiry on every write.
 */
export class RedisTaskMessageQueue implements TaskMessageQueue {
  constructor(
    private readonly redis: RedisAccess,
    private readonly options: ResolvedTaskOptions,
  ) {}

  private key(taskId: string, sessionId: string | undefined): string {
    return this.redis.key(sessionId ?? UNBOUND, `taskq:${checkTaskId(taskId)}`);
  }

  async enqueue(
    taskId: string,
    message: QueuedMessage,
    sessionId?: string,
    maxSize?: number,
  ): Promise<void> {
    const max = Math.min(maxSize ?? Number.POSITIVE_INFINITY, this.options.maxQueueSize);
    const n = await redisCall(this.redis, "task enqueue", () =>
      runScript(
        this.redis.client,
        ENQUEUE,
        [this.key(taskId, sessionId)],
        [max, Math.ceil(this.options.queueTtlMs), JSON.stringify(message)],
      ),
    );
    if (typeof n === "number" && n < 0) {
      throw new SessionStoreError(
        ErrorCode.INVALID_ARGUMENT,
        `Task message queue overflow: queue size (${-1 - n}) exceeds maximum (${max})`,
      );
    }
  }

  async dequeue(taskId: string, sessionId?: string): Promise<QueuedMessage | undefined> {
    const key = this.key(taskId, sessionId);
    const json = await redisCall(this.redis, "LPOP", () => this.redis.client.lpop(key));
    return json === null ? undefined : (JSON.parse(json) as QueuedMessage);
  }

  async dequeueAll(taskId: string, sessionId?: string): Promise<QueuedMessage[]> {
    const key = this.key(taskId, sessionId);
    const replies = await redisCall(this.redis, "LRANGE", () =>
      this.redis.client.multi().lrange(key, 0, -1).del(key).exec(),
    );
    const [err, items] = replies?.[0] ?? [null, []];
    if (err !== null)
      throw new SessionStoreError(ErrorCode.BACKEND_UNAVAILABLE, "Redis LRANGE failed", {
        cause: err,
      });
    return (items as string[]).map((json) => JSON.parse(json) as QueuedMessage);
  }
}

// ------------------------------------------------------------------------------------------------
// Memory

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

/** The memory twin of `RedisTaskMessageQueue`. */
export class MemoryTaskMessageQueue implements TaskMessageQueue {
  private readonly queues = new Map<string, { items: string[]; expiresAt: number }>();

  constructor(private readonly options: ResolvedTaskOptions) {}

  private key(taskId: string, sessionId: string | undefined): string {
    return `${sessionId ?? UNBOUND}\u0000${checkTaskId(taskId)}`;
  }

  private live(key: string): { items: string[]; expiresAt: number } | undefined {
    const queue = this.queues.get(key);
    if (queue !== undefined && queue.expiresAt <= Date.now()) {
      this.queues.delete(key);
      return undefined;
    }
    return queue;
  }

  async enqueue(
    taskId: string,
    message: QueuedMessage,
    sessionId?: string,
    maxSize?: number,
  ): Promise<void> {
    const key = this.key(taskId, sessionId);
    const max = Math.min(maxSize ?? Number.POSITIVE_INFINITY, this.options.maxQueueSize);
    let queue = this.live(key);
    const n = queue?.items.length ?? 0;
    if (n >= max) {
      throw new SessionStoreError(
        ErrorCode.INVALID_ARGUMENT,
        `Task message queue overflow: queue size (${n}) exceeds maximum (${max})`,
      );
    }
    if (queue === undefined) {
      queue = { items: [], expiresAt: 0 };
      this.queues.set(key, queue);
    }
    queue.items.push(JSON.stringify(message));
    queue.expiresAt = Date.now() + this.options.queueTtlMs;
  }

  async dequeue(taskId: string, sessionId?: string): Promise<QueuedMessage | undefined> {
    const key = this.key(taskId, sessionId);
    const queue = this.live(key);
    const json = queue?.items.shift();
    if (queue !== undefined && queue.items.length === 0) this.queues.delete(key);
    return json === undefined ? undefined : (JSON.parse(json) as QueuedMessage);
  }

  async dequeueAll(taskId: string, sessionId?: string): Promise<QueuedMessage[]> {
    const key = this.key(taskId, sessionId);
    const queue = this.live(key);
    this.queues.delete(key);
    return (queue?.items ?? []).map((json) => JSON.parse(json) as QueuedMessage);
  }

  clear(): void {
    this.queues.clear();
  }
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

/** Builds the task store and message queue on Redis (when `redis` is given) or in memory. */
export function createMcpTaskStores(
  redis: RedisAccess | undefined,
  options: McpTaskStoreOptions & { defaultTtl?: number } = {},
): { taskStore: TaskStore; taskMessageQueue: TaskMessageQueue } {
  const resolved = resolveTaskOptions(options);
  return redis === undefined
    ? {
        taskStore: new MemoryTaskStore(resolved, options.registry),
        taskMessageQueue: new MemoryTaskMessageQueue(resolved),
      }
    : {
        taskStore: new RedisTaskStore(redis, resolved, options.registry),
        taskMessageQueue: new RedisTaskMessageQueue(redis, resolved),
      };
}
