import type {
  QueuedMessage,
  TaskMessageQueue,
} from "@modelcontextprotocol/sdk/experimental/tasks/interfaces.js";
import { ErrorCode, SessionStoreError } from "../../../errors.js";
import { checkTaskId, type ResolvedTaskOptions, UNBOUND } from "./shared.js";

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
