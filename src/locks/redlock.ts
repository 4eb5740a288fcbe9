import { randomBytes } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { ErrorCode, SessionStoreError } from "../errors.js";
import type { Lock, Logger } from "../types.js";
import {
  abortedError,
  closedError,
  lockLost,
  lockReleased,
  quorumError,
  timeoutError,
} from "./errors.js";
import { checkLease, Lease } from "./lease.js";
import type { LockManager, NotifyObservers } from "./types.js";

/** One independent Redis master of the Redlock quorum. */
export interface RedlockNode {
  client: Redis | Cluster;
  /** Redacted host:port, used as a metric label and in log lines. */
  name: string;
}

type Client = Redis | Cluster;
type KeySuffix = "lock" | "fence" | "queue" | "chan";

/** Clock drift allowance: 1% of the lease plus 2 ms for Redis expiry precision (redis.io spec). */
const DRIFT_FACTOR = 0.01;
const DRIFT_FLOOR_MS = 2;
/** First retry delay; waiters are woken by pub/sub on release, so polling is only a fallback. */
const BACKOFF_BASE_MS = 50;
const BACKOFF_CAP_MS = 1000;
/** How long a resource channel stays subscribed after its last waiter, to save SUBSCRIBE churn. */
const LINGER_MS = 10_000;

/*
 * Keys per resource (one hash tag): lock (value, PX lease), fence (counter), queue (ZSET of waiter
 * tickets scored by arrival time, epoch ms) and queue:hb (HASH ticket -> heartbeat deadline, server
 * ms). A waiter's ticket is refreshed on every attempt; a ticket whose deadline passed is stale
 * and dropped, so a crashed process cannot block the queue for long. Only the head of the queue
 * (or anyone when the queue is empty) may take a free lock. Scores are the client's arrival time,
 * so the queues of independent nodes agree on the order.
 */

/*
 * Fencing tokens: the next token is max(counter + 1, server clock in microseconds). The counter
 * keeps tokens increasing between nodes that remember it; the clock floor keeps them increasing
 * when the nodes that remembered it restarted empty. Microseconds since 1970 stay below 2^53
 * until the year 2255. '%.0f' writes the number whole (tostring would use an exponent).
 */

/**
 * KEYS lock fence queue hb; ARGV value ttlMs ticket score hbMs single. Returns {1, token} |
 * {0, pttl} | {-1, 0}. With single = '1' the token is stored at once; otherwise the caller takes
 * the largest token of the quorum and stores it with FENCE.
 */
export const ACQUIRE = `
local ticket = ARGV[3]
local micros
local function clock()
  if not micros then
    local t = redis.call('TIME')
    micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return math.floor(micros / 1000)
end
if ticket ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], ticket)
  redis.call('HSET', KEYS[4], ticket, clock() + tonumber(ARGV[5]))
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  redis.call('PEXPIRE', KEYS[4], ARGV[5])
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl ~= -2 then return {0, pttl} end
for i = 1, 100 do
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if not head or head == ticket then break end
  if tonumber(redis.call('HGET', KEYS[4], head) or '0') >= clock() then return {-1, 0} end
  redis.call('ZREM', KEYS[3], head)
  redis.call('HDEL', KEYS[4], head)
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ticket ~= '' then
  redis.call('ZREM', KEYS[3], ticket)
  redis.call('HDEL', KEYS[4], ticket)
end
clock()
local token = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1, micros)
if ARGV[6] == '1' then redis.call('SET', KEYS[2], string.format('%.0f', token)) end
return {1, token}
`;

/** KEYS lock fence; ARGV value token. Raises the counter to token; 1 if we still hold the lock. */
export const FENCE = `
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
`;

/** KEYS lock; ARGV value ttlMs. */
export const EXTEND = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

/** KEYS lock queue; ARGV value channel. Deletes only our value, then wakes the head of the queue. */
export const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
if head then redis.call('PUBLISH', ARGV[2], head) end
return 1
`;

/** KEYS lock queue hb; ARGV ticket channel. Leaves the queue; wakes the new head if the lock is free. */
export const DEQUEUE = `
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if head then redis.call('PUBLISH', ARGV[2], head) end
end
return 1
`;

interface LockCommands {
  mssLockAcquire(...args: Array<string | number>): Promise<[number, number]>;
  mssLockFence(...args: Array<string | number>): Promise<number>;
  mssLockExtend(...args: Array<string | number>): Promise<number>;
  mssLockRelease(...args: Array<string | number>): Promise<number>;
  mssLockDequeue(...args: Array<string | number>): Promise<number>;
}

type Scripted = Client & LockCommands;

function defineScripts(client: Client): Scripted {
  const scripted = client as Scripted;
  // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT (e.g. after SCRIPT FLUSH).
  if (typeof scripted.mssLockAcquire !== "function") {
    client.defineCommand("mssLockAcquire", { numberOfKeys: 4, lua: ACQUIRE });
    client.defineCommand("mssLockFence", { numberOfKeys: 2, lua: FENCE });
    client.defineCommand("mssLockExtend", { numberOfKeys: 1, lua: EXTEND });
    client.defineCommand("mssLockRelease", { numberOfKeys: 2, lua: RELEASE });
    client.defineCommand("mssLockDequeue", { numberOfKeys: 3, lua: DEQUEUE });
  }
  return scripted;
}

interface Keys {
  lock: string;
  fence: string;
  queue: string;
  hb: string;
  chan: string;
}

interface NodeState {
  readonly name: string;
  readonly client: Scripted;
  subscriber: Client | undefined;
  wasReady: boolean;
  down: boolean;
}

type Reply<T> = { ok: true; value: T } | { ok: false; sent: boolean };

type Attempt =
  | { kind: "granted"; lock: RedlockLock }
  | { kind: "held"; pttl: number }
  | { kind: "queued" }
  | { kind: "quorum" };

interface Waiter {
  readonly ttlMs: number;
  /** Arrival time, epoch ms: the score of the ticket in the cross-process queue. */
  readonly arrival: number;
  readonly ticket: string;
  /** An attempt carrying the ticket was sent, so the ticket may sit in a node's queue. */
  enqueued: boolean;
  attempts: number;
  settled: boolean;
  resolve(lock: Lock): void;
  reject(err: SessionStoreError): void;
  cleanup(): void;
}

interface Resource {
  readonly id: string;
  readonly keys: Keys;
  /** Local FIFO; only the head talks to Redis. */
  readonly queue: Waiter[];
  running: boolean;
  /** Set when a release message named the head's ticket: retry at once. */
  woken: boolean;
  wake: (() => void) | undefined;
  lastFailure: "held" | "quorum" | undefined;
  subscribed: boolean;
  linger: NodeJS.Timeout | undefined;
}

function drift(ttlMs: number): number {
  return Math.floor(ttlMs * DRIFT_FACTOR) + DRIFT_FLOOR_MS;
}

class RedlockLock implements Lock {
  private readonly controller = new AbortController();
  private readonly lease = new Lease(() => {
    void this.lose("the lease expired before it was extended");
  });
  private done = false;
  private releasing: Promise<void> | undefined;

  constructor(
    private readonly manager: RedlockManager,
    readonly resource: string,
    private readonly keys: Keys,
    private readonly value: string,
    private readonly ttlMs: number,
    readonly fencingToken: number,
    validityMs: number,
  ) {
    this.lease.start(validityMs);
  }

  get expiresAt(): number {
    return this.lease.expiresAt;
  }

  /** Reads aborted as soon as the lease is over, even before its timer has had a turn. */
  get signal(): AbortSignal {
    if (!this.done && this.lease.over) void this.lose("the lease expired before it was extended");
    return this.controller.signal;
  }

  /** The lease is gone: abort the signal, and free whatever nodes still hold our value. */
  lose(why: string, notify = true): Promise<unknown> {
    if (this.done) return Promise.resolve();
    this.done = true;
    this.lease.stop();
    this.manager.held.delete(this);
    if (notify) this.manager.notify("lockLost");
    this.controller.abort(lockLost(this.resource, why));
    return this.manager.releaseValue(this.keys, this.value);
  }

  async extend(ttlMs: number = this.ttlMs): Promise<void> {
    checkLease(ttlMs);
    if (this.done) throw lockLost(this.resource, "the lock was released or had already expired");
    const start = performance.now();
    if (this.lease.over) {
      this.lose("the lease expired before it was extended");
      throw lockLost(this.resource, "the lease expired before it was extended");
    }
    const acks = await this.manager.extendValue(this.keys, this.value, ttlMs);
    if (this.done)
      throw lockLost(this.resource, "the lock was released or expired during the extension");
    const validity = ttlMs - (performance.now() - start) - drift(ttlMs);
    if (acks >= this.manager.quorum && validity > 0) {
      this.lease.start(validity);
      return;
    }
    this.lose("an extension did not reach a quorum of nodes in time");
    throw lockLost(this.resource, "an extension did not reach a quorum of nodes in time");
  }

  release(): Promise<void> {
    this.releasing ??= this.doRelease();
    return this.releasing;
  }

  private async doRelease(): Promise<void> {
    const wasHeld = !this.done;
    this.done = true;
    this.lease.stop();
    this.manager.held.delete(this);
    if (!this.controller.signal.aborted) this.controller.abort(lockReleased(this.resource));
    const answered = await this.manager.releaseValue(this.keys, this.value);
    if (wasHeld && answered < this.manager.quorum) {
      throw quorumError(this.resource, "release not confirmed; the lease will expire by itself");
    }
  }
}

/**
 * The Redlock algorithm (redis.io distributed locks) over N independent Redis masters, with
 * fencing tokens, pub/sub wake-ups on release, FIFO grants within a process and a cross-process
 * waiting queue. Works with ioredis `Redis` and `Cluster` clients (every key of a resource shares
 * one hash tag).
 */
export class RedlockManager implements LockManager {
  readonly notify: NotifyObservers;
  readonly quorum: number;
  /** @internal Leases currently held, released when the manager closes. */
  readonly held = new Set<RedlockLock>();
  private readonly nodes: NodeState[];
  private readonly key: (id: string, suffix: KeySuffix) => string;
  private readonly commandTimeout: number;
  private readonly logger: Logger;
  private readonly heartbeatMs: number;
  private readonly resources = new Map<string, Resource>();
  private readonly channels = new Map<string, Resource>();
  private closed = false;

  constructor(options: {
    nodes: RedlockNode[];
    key: (id: string, suffix: KeySuffix) => string;
    notify: NotifyObservers;
    commandTimeout: number;
    logger: Logger;
  }) {
    if (!Array.isArray(options.nodes) || options.nodes.length === 0) {
      throw new SessionStoreError(
        ErrorCode.INVALID_ARGUMENT,
        'Invalid option "lockNodes": expected at least one node',
      );
    }
    this.nodes = options.nodes.map((node) => ({
      name: node.name,
      client: defineScripts(node.client),
      subscriber: undefined,
      wasReady: false,
      down: false,
    }));
    this.quorum = Math.floor(this.nodes.length / 2) + 1;
    this.key = options.key;
    this.notify = options.notify;
    this.commandTimeout = options.commandTimeout;
    this.logger = options.logger;
    // A waiter refreshes its ticket at least every BACKOFF_CAP_MS plus one command.
    this.heartbeatMs = 2 * BACKOFF_CAP_MS + options.commandTimeout;
  }

  acquire(
    resource: string,
    options: { ttlMs: number; waitTimeoutMs: number; signal?: AbortSignal | undefined },
  ): Promise<Lock> {
    if (this.closed) return Promise.reject(closedError());
    const { ttlMs, waitTimeoutMs, signal } = options;
    if (signal?.aborted) return Promise.reject(abortedError(resource, signal.reason));
    if (waitTimeoutMs <= 0) return this.tryOnce(resource, ttlMs);
    const state = this.resourceOf(resource);
    return new Promise<Lock>((resolve, reject) => {
      const onAbort = (): void => {
        void this.giveUp(state, waiter, abortedError(resource, signal?.reason));
      };
      const timer = setTimeout(() => {
        const err =
          state.lastFailure === "quorum"
            ? quorumError(resource, `not acquired within ${waitTimeoutMs} ms`)
            : timeoutError(resource, waitTimeoutMs);
        void this.giveUp(state, waiter, err);
      }, waitTimeoutMs);
      const waiter: Waiter = {
        ttlMs,
        arrival: Date.now(),
        ticket: randomBytes(10).toString("hex"),
        enqueued: false,
        attempts: 0,
        settled: false,
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      state.queue.push(waiter);
      if (!state.running) void this.run(state);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending: Array<Promise<unknown>> = [];
    for (const state of this.resources.values()) {
      clearTimeout(state.linger);
      for (const waiter of [...state.queue])
        pending.push(this.giveUp(state, waiter, closedError()));
      state.wake?.();
    }
    for (const lock of [...this.held]) pending.push(lock.lose("the store was closed", false));
    await Promise.allSettled(pending);
    this.resources.clear();
    this.channels.clear();
    for (const node of this.nodes) {
      node.subscriber?.disconnect();
      node.subscriber = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Waiting

  private resourceOf(id: string): Resource {
    let state = this.resources.get(id);
    if (state === undefined) {
      state = {
        id,
        keys: {
          lock: this.key(id, "lock"),
          fence: this.key(id, "fence"),
          queue: this.key(id, "queue"),
          hb: `${this.key(id, "queue")}:hb`,
          chan: this.key(id, "chan"),
        },
        queue: [],
        running: false,
        woken: false,
        wake: undefined,
        lastFailure: undefined,
        subscribed: false,
        linger: undefined,
      };
      this.resources.set(id, state);
    }
    clearTimeout(state.linger);
    state.linger = undefined;
    return state;
  }

  private async tryOnce(resource: string, ttlMs: number): Promise<Lock> {
    const state = this.resources.get(resource) ?? this.resourceOf(resource);
    const result = await this.attempt(state, ttlMs, "", Date.now());
    this.idle(state);
    if (result.kind === "granted") {
      if (!this.closed) return result.lock;
      await result.lock.release().catch(() => {});
      throw closedError();
    }
    if (result.kind === "quorum") throw quorumError(resource, "one attempt failed");
    this.notify("lockContention");
    throw timeoutError(resource, 0);
  }

  /** Rejects a waiter (timeout, abort, close); its ticket leaves every node's queue first. */
  private giveUp(state: Resource, waiter: Waiter, err: SessionStoreError): Promise<void> {
    if (waiter.settled) return Promise.resolve();
    waiter.settled = true;
    waiter.cleanup();
    const index = state.queue.indexOf(waiter);
    if (index >= 0) state.queue.splice(index, 1);
    if (index === 0) state.wake?.();
    if (!waiter.enqueued) {
      waiter.reject(err);
      this.idle(state);
      return Promise.resolve();
    }
    return this.dequeue(state, waiter.ticket).then(() => {
      waiter.reject(err);
      this.idle(state);
    });
  }

  private async run(state: Resource): Promise<void> {
    state.running = true;
    try {
      for (;;) {
        const waiter = state.queue[0];
        if (waiter === undefined || this.closed) return;
        await this.subscribe(state);
        if (waiter.settled || this.closed) continue;
        waiter.enqueued = true;
        state.woken = false;
        let result: Attempt;
        try {
          result = await this.attempt(state, waiter.ttlMs, waiter.ticket, waiter.arrival);
        } catch (err) {
          this.logger.error(`Lock attempt failed unexpectedly: ${(err as Error).message}`);
          result = { kind: "quorum" };
        }
        if (result.kind === "granted") {
          if (waiter.settled || this.closed) {
            await result.lock.release().catch(() => {});
            continue;
          }
          waiter.settled = true;
          waiter.cleanup();
          state.queue.splice(state.queue.indexOf(waiter), 1);
          waiter.resolve(result.lock);
          continue;
        }
        state.lastFailure = result.kind === "quorum" ? "quorum" : "held";
        if (result.kind !== "quorum") this.notify("lockContention");
        if (waiter.settled || this.closed) continue;
        waiter.attempts += 1;
        this.notify("lockRetry", waiter.attempts, state.lastFailure);
        if (!state.woken) await this.sleep(state, this.backoff(waiter.attempts, result));
      }
    } finally {
      state.running = false;
      this.idle(state);
    }
  }

  private backoff(attempts: number, result: Attempt): number {
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempts - 1, 16));
    let delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    // A lease that runs out publishes nothing: be there when it does.
    if (result.kind === "held" && result.pttl >= 0) delay = Math.min(delay, result.pttl + 1);
    return Math.max(1, Math.round(delay));
  }

  private sleep(state: Resource, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (state.wake === done) state.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      state.wake = done;
    });
  }

  /** No waiter left: keep the channel subscribed a little, then forget the resource. */
  private idle(state: Resource): void {
    if (state.running || state.queue.length > 0 || this.resources.get(state.id) !== state) return;
    if (!state.subscribed || this.closed) {
      this.resources.delete(state.id);
      return;
    }
    clearTimeout(state.linger);
    state.linger = setTimeout(() => {
      state.linger = undefined;
      if (state.running || state.queue.length > 0) return;
      this.resources.delete(state.id);
      this.channels.delete(state.keys.chan);
      state.subscribed = false;
      for (const node of this.nodes) node.subscriber?.unsubscribe(state.keys.chan).catch(() => {});
    }, LINGER_MS);
    state.linger.unref();
  }

  private async subscribe(state: Resource): Promise<void> {
    if (state.subscribed) return;
    state.subscribed = true;
    this.channels.set(state.keys.chan, state);
    // Wait for connected subscribers only: a dead node must not delay the first attempt.
    await Promise.all(
      this.nodes.map((node) => {
        const subscriber = this.subscriberOf(node);
        const done = subscriber.subscribe(state.keys.chan).catch(() => {});
        return subscriber.status === "ready" ? this.bounded(done).catch(() => {}) : undefined;
      }),
    );
  }

  private subscriberOf(node: NodeState): Client {
    if (node.subscriber !== undefined) return node.subscriber;
    const client = node.client as Client;
    const subscriber = client.isCluster
      ? (client as Cluster).duplicate()
      : (client as Redis).duplicate({
          lazyConnect: false,
          enableOfflineQueue: true,
          autoResubscribe: true,
          maxRetriesPerRequest: null,
        });
    // Connection errors of the subscriber are counted through the data commands of the node.
    subscriber.on("error", () => {});
    subscriber.on("message", (channel: string, message: string) => {
      const state = this.channels.get(channel);
      if (state !== undefined && state.queue[0]?.ticket === message) {
        state.woken = true;
        state.wake?.();
      }
    });
    node.subscriber = subscriber;
    return subscriber;
  }

  // -------------------------------------------------------------------------------------------
  // Talking to the nodes

  /** One Redlock attempt on every node; a failed attempt releases what it got before returning. */
  private async attempt(
    state: Resource,
    ttlMs: number,
    ticket: string,
    arrival: number,
  ): Promise<Attempt> {
    const { keys } = state;
    const value = randomBytes(20).toString("hex");
    const single = this.nodes.length === 1;
    const start = performance.now();
    const replies = await Promise.all(
      this.nodes.map((node) =>
        this.call(node, (c) =>
          c.mssLockAcquire(
            keys.lock,
            keys.fence,
            keys.queue,
            keys.hb,
            value,
            ttlMs,
            ticket,
            arrival,
            this.heartbeatMs,
            single ? 1 : 0,
          ),
        ),
      ),
    );
    let answered = 0;
    let pttl = -1;
    let held = false;
    let fence = 0;
    const granted: NodeState[] = [];
    // Nodes that refused, or were never sent the command: nothing of ours to release there.
    const others: NodeState[] = [];
    replies.forEach((reply, i) => {
      const node = this.nodes[i] as NodeState;
      if (!reply.ok) {
        if (!reply.sent) others.push(node);
        return;
      }
      answered += 1;
      const [code, n] = reply.value;
      if (code === 1) {
        granted.push(node);
        fence = Math.max(fence, Number(n));
      } else {
        others.push(node);
        if (code === 0) {
          held = true;
          if (n >= 0) pttl = pttl < 0 ? n : Math.min(pttl, n);
        }
      }
    });
    // Each granting node proposed max(its counter + 1, its clock): majorities intersect, so the
    // previous holder's token is below at least one proposal unless those nodes lost their data.
    const token = fence;
    let ok = granted.length >= this.quorum;
    if (ok && !single) {
      const acks = await Promise.all(
        granted.map((node) =>
          this.call(node, (c) => c.mssLockFence(keys.lock, keys.fence, value, token)),
        ),
      );
      ok = acks.filter((a) => a.ok && a.value === 1).length >= this.quorum;
    }
    const validity = ttlMs - (performance.now() - start) - drift(ttlMs);
    if (ok && validity > 0) {
      const lock = new RedlockLock(this, state.id, keys, value, ttlMs, token, validity);
      this.held.add(lock);
      // A node that refused (or never answered) may keep our ticket in its queue.
      if (ticket !== "" && granted.length < this.nodes.length) {
        const rest = this.nodes.filter((n) => !granted.includes(n));
        void Promise.all(
          rest.map((node) =>
            this.call(node, (c) =>
              c.mssLockDequeue(keys.lock, keys.queue, keys.hb, ticket, keys.chan),
            ),
          ),
        );
      }
      return { kind: "granted", lock };
    }
    const release = this.nodes.filter((n) => !others.includes(n));
    if (release.length > 0) {
      // Every node that did not refuse may hold our value (a timed-out command can still land).
      await Promise.all(
        release.map((node) =>
          this.call(node, (c) => c.mssLockRelease(keys.lock, keys.queue, value, keys.chan)),
        ),
      );
    }
    if (answered < this.quorum || granted.length >= this.quorum) return { kind: "quorum" };
    return held ? { kind: "held", pttl } : { kind: "queued" };
  }

  /** @internal Deletes our value on every node; resolves with the number of nodes that answered. */
  async releaseValue(keys: Keys, value: string): Promise<number> {
    const replies = await Promise.all(
      this.nodes.map((node) =>
        this.call(node, (c) => c.mssLockRelease(keys.lock, keys.queue, value, keys.chan)),
      ),
    );
    return replies.filter((r) => r.ok).length;
  }

  /** @internal Renews our value's lease; resolves with the number of nodes that confirmed. */
  async extendValue(keys: Keys, value: string, ttlMs: number): Promise<number> {
    const replies = await Promise.all(
      this.nodes.map((node) => this.call(node, (c) => c.mssLockExtend(keys.lock, value, ttlMs))),
    );
    return replies.filter((r) => r.ok && r.value === 1).length;
  }

  private async dequeue(state: Resource, ticket: string): Promise<void> {
    const { keys } = state;
    await Promise.all(
      this.nodes.map((node) =>
        this.call(node, (c) => c.mssLockDequeue(keys.lock, keys.queue, keys.hb, ticket, keys.chan)),
      ),
    );
  }

  private bounded<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no answer within ${this.commandTimeout} ms`)),
        this.commandTimeout,
      );
      promise.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /** One command on one node, never longer than commandTimeout; failures are counted, not thrown. */
  private async call<T>(node: NodeState, run: (client: Scripted) => Promise<T>): Promise<Reply<T>> {
    const status = node.client.status;
    if (status === "ready") node.wasReady = true;
    else if (status === "end" || status === "close" || status === "reconnecting" || node.wasReady) {
      // Known to be disconnected: fail now rather than wait for a timeout.
      this.nodeFailed(node, new Error(`connection is ${status}`));
      return { ok: false, sent: false };
    }
    try {
      const value = await this.bounded(run(node.client));
      if (node.down) {
        node.down = false;
        this.logger.info(`Redlock node ${node.name} answers again`);
      }
      return { ok: true, value };
    } catch (err) {
      this.nodeFailed(node, err);
      return { ok: false, sent: true };
    }
  }

  private nodeFailed(node: NodeState, err: unknown): void {
    this.notify("redlockNodeError", node.name);
    if (!node.down) {
      node.down = true;
      this.logger.warn(
        `Redlock node ${node.name} failed: ${(err as Error)?.message ?? String(err)}`,
      );
    }
  }
}
