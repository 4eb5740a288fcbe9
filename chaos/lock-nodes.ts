import { createRedisSessionStore, type SessionStore } from "../src/index.js";
import { type RedisNode, startRedisNodes } from "../test/support/redis.js";
import { silent } from "./faults.js";

/** A data node and three independent lock nodes, and stores that lock on them. */
export class LockDeployment {
  private readonly stores: SessionStore[] = [];

  private constructor(
    readonly data: RedisNode,
    readonly locks: RedisNode[],
    private readonly commandTimeoutMs: number,
  ) {}

  static async start(commandTimeoutMs: number): Promise<LockDeployment> {
    const [data, ...locks] = await startRedisNodes(4);
    return new LockDeployment(data as RedisNode, locks, commandTimeoutMs);
  }

  async store(lockTimeoutMs: number): Promise<SessionStore> {
    const store = await createRedisSessionStore({
      redisUrl: this.data.url,
      lockNodes: this.locks.map((n) => n.url),
      lockTimeout: lockTimeoutMs,
      commandTimeout: this.commandTimeoutMs,
      instrumentation: false,
      logger: silent,
    });
    this.stores.push(store);
    return store;
  }

  async stop(): Promise<void> {
    await Promise.all(this.stores.map((s) => s.disconnect()));
    await Promise.all([this.data, ...this.locks].map((n) => n.stop()));
  }
}
