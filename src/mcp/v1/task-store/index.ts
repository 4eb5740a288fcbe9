import type {
  TaskMessageQueue,
  TaskStore,
} from "@modelcontextprotocol/sdk/experimental/tasks/interfaces.js";
import type { RedisAccess } from "../../support.js";
import { MemoryTaskMessageQueue } from "./memory-task-message-queue.js";
import { MemoryTaskStore } from "./memory-task-store.js";
import { RedisTaskMessageQueue } from "./redis-task-message-queue.js";
import { RedisTaskStore } from "./redis-task-store.js";
import { type McpTaskStoreOptions, resolveTaskOptions } from "./shared.js";

export type { McpTaskStoreOptions } from "./shared.js";
export { resolveTaskOptions } from "./shared.js";
export { MemoryTaskMessageQueue, MemoryTaskStore, RedisTaskMessageQueue, RedisTaskStore };

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
