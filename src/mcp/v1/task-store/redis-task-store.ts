import type {
  CreateTaskOptions,
  TaskStore,
} from "@modelcontextprotocol/sdk/experimental/tasks/interfaces.js";
import type { Request, RequestId, Result, Task } from "@modelcontextprotocol/sdk/types.js";
import type { Registry } from "prom-client";
import { hashId } from "../../../codec.js";
import { ErrorCode, SessionStoreError } from "../../../errors.js";
import {
  luaScript,
  type McpMetrics,
  mcpMetrics,
  type RedisAccess,
  redisCall,
  runScript,
  safely,
} from "../../support.js";
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
