import type {
  QueuedMessage,
  TaskMessageQueue,
} from "@modelcontextprotocol/sdk/experimental/tasks/interfaces.js";
import { ErrorCode, SessionStoreError } from "../../../errors.js";
import { luaScript, type RedisAccess, redisCall, runScript } from "../../support.js";
import { checkTaskId, type ResolvedTaskOptions, UNBOUND } from "./shared.js";

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
