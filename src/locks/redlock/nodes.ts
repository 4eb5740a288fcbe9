import type { Cluster, Redis } from "ioredis";
import { ErrorCode, SessionStoreError } from "../../errors.js";
import { withTimeout } from "../../timeout.js";
import type { Logger } from "../../types.js";
import type { NotifyObservers } from "../types.js";
import type { Keys } from "./keys.js";
import { defineScripts, type Scripted } from "./scripts.js";

/** One independent Redis master of the Redlock quorum. */
export interface RedlockNode {
  client: Redis | Cluster;
  /** Redacted host:port, used as a metric label and in log lines. */
  name: string;
}

export interface NodeState {
  readonly name: string;
  readonly client: Scripted;
  wasReady: boolean;
  down: boolean;
}

/** The answer of one node: its value, or a failure that says whether the command went out. */
export type Reply<T> = { ok: true; value: T } | { ok: false; sent: boolean };

/**
 * The Redlock nodes and the one way to talk to them: every command bounded by `commandTimeout`,
 * failures counted per node and logged once per outage, never thrown.
 */
export class NodeSet {
  readonly list: readonly NodeState[];
  readonly quorum: number;

  constructor(
    nodes: RedlockNode[],
    private readonly options: { commandTimeout: number; logger: Logger; notify: NotifyObservers },
  ) {
    if (!Array.isArray(nodes) || nodes.length === 0) {
      throw new SessionStoreError(
        ErrorCode.INVALID_ARGUMENT,
        'Invalid option "lockNodes": expected at least one node',
      );
    }
    this.list = nodes.map((node) => ({
      name: node.name,
      client: defineScripts(node.client),
      wasReady: false,
      down: false,
    }));
    this.quorum = Math.floor(this.list.length / 2) + 1;
  }

  /** One command on one node, never longer than commandTimeout. */
  async call<T>(node: NodeState, run: (client: Scripted) => Promise<T>): Promise<Reply<T>> {
    const status = node.client.status;
    if (status === "ready") node.wasReady = true;
    else if (status === "end" || status === "close" || status === "reconnecting" || node.wasReady) {
      // Known to be disconnected: fail now rather than wait for a timeout.
      this.failed(node, new Error(`connection is ${status}`));
      return { ok: false, sent: false };
    }
    try {
      const value = await this.bounded(run(node.client));
      if (node.down) {
        node.down = false;
        this.options.logger.info(`Redlock node ${node.name} answers again`);
      }
      return { ok: true, value };
    } catch (err) {
      this.failed(node, err);
      return { ok: false, sent: true };
    }
  }

  /** The same command on every node of `nodes` (default: all), in parallel. */
  all<T>(
    run: (client: Scripted) => Promise<T>,
    nodes: readonly NodeState[] = this.list,
  ): Promise<Array<Reply<T>>> {
    return Promise.all(nodes.map((node) => this.call(node, run)));
  }

  /**
   * Gives up our value on `nodes` (default: all), handing the lock to the head of the queue where
   * one waits (or to `next`, the ticket of our process's next waiter, when it is nearly the head),
   * with tokens above `token` (ours, 0 for none); resolves with the number of nodes that answered.
   */
  async releaseValue(
    keys: Keys,
    value: string,
    nodes?: readonly NodeState[],
    token = 0,
    next = "",
  ): Promise<number> {
    const replies = await this.all(
      (c) =>
        c.mssLockRelease(
          keys.lock,
          keys.queue,
          keys.hb,
          keys.grant,
          keys.fence,
          value,
          keys.chan,
          token,
          next,
        ),
      nodes,
    );
    return replies.filter((r) => r.ok).length;
  }

  /** Renews our value's lease; resolves with the number of nodes that confirmed. */
  async extendValue(keys: Keys, value: string, ttlMs: number): Promise<number> {
    const replies = await this.all((c) => c.mssLockExtend(keys.lock, value, ttlMs));
    return replies.filter((r) => r.ok && r.value === 1).length;
  }

  /**
   * Takes a waiter's ticket out of the queues of `nodes` (default: all). A lock already handed to
   * the ticket there is handed on, unless `keep` (the waiter holds the lock and will release it).
   */
  async dequeue(
    keys: Keys,
    ticket: string,
    nodes?: readonly NodeState[],
    keep = false,
  ): Promise<void> {
    await this.all(
      (c) =>
        c.mssLockDequeue(
          keys.lock,
          keys.queue,
          keys.hb,
          keys.grant,
          keys.fence,
          ticket,
          keys.chan,
          keep ? 1 : 0,
        ),
      nodes,
    );
  }

  /** `promise`, or a rejection once commandTimeout has passed. */
  bounded<T>(promise: Promise<T>): Promise<T> {
    return withTimeout(promise, this.options.commandTimeout);
  }

  private failed(node: NodeState, err: unknown): void {
    this.options.notify("redlockNodeError", node.name);
    if (!node.down) {
      node.down = true;
      this.options.logger.warn(
        `Redlock node ${node.name} failed: ${(err as Error)?.message ?? String(err)}`,
      );
    }
  }
}
