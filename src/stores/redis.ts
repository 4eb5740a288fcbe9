import { randomBytes } from "node:crypto";
import { Cluster, Redis } from "ioredis";
import { decode } from "../codec.js";
import { ErrorCode, isSessionStoreError, SessionStoreError } from "../errors.js";
import { RedlockManager, type RedlockNode } from "../locks/redlock.js";
import { checkRedisUrl, type ResolvedOptions } from "../options.js";
import { TimeoutError, withTimeout } from "../timeout.js";
import type { StoreHealth, StoreInternals } from "../types.js";
import { BaseStore } from "./base.js";
import { describeFailure } from "./failure-text.js";
import { KeyedQueue, type QueueSlot } from "./keyed-queue.js";
import { KeyLayout } from "./keys.js";
import {
  type Client,
  clientOptions,
  describeClient,
  describeTarget,
  isClient,
  isCluster,
  isClusterConfig,
  settle,
  whenReady,
} from "./redis-clients.js";
import { CAS_SCRIPT, DELETE_SCRIPT, SET_SCRIPT, TOUCH_SCRIPT } from "./scripts.js";

/** The watchdog looks this many times per commandTimeout. */
const WATCH_TICKS = 8;
/** How many times `updateSession` retries a compare-and-set before `ERR_CONFLICT`. */
const MAX_CAS_ATTEMPTS = 32;
const SCAN_COUNT = 1000;

/** Every write ends with the fence arguments: writer id, sequence number, floor (scripts.ts). */
interface ScriptCommands {
  mssSet(
    key: string,
    tombstone: string,
    data: string,
    ttlMs: number,
    now: number,
    writer: string,
    seq: number,
    floor: number,
  ): Promise<number>;
  mssCas(
    key: string,
    tombstone: string,
    version: string,
    createdAt: string,
    data: string,
    ttlMs: number,
    now: number,
    writer: string,
    seq: number,
    floor: number,
  ): Promise<number>;
  mssDel(
    key: string,
    tombstone: string,
    writer: string,
    seq: number,
    floor: number,
    tombstoneMs: number,
  ): Promise<number>;
  mssTouch(key: string, ttlMs: number, writer: string, seq: number, floor: number): Promise<number>;
}

/** What a fenced script returns when a later write of this store already landed on the record. */
const STALE = -2;
/** Key suffix of a deleted record's tombstone (its write fences, see scripts.ts). */
const TOMBSTONE = "gone";

function defineScripts(client: Client): void {
  const scripted = client as Client & Partial<ScriptCommands>;
  if (typeof scripted.mssSet !== "function") {
    client.defineCommand("mssSet", { numberOfKeys: 2, lua: SET_SCRIPT });
  }
  if (typeof scripted.mssCas !== "function") {
    client.defineCommand("mssCas", { numberOfKeys: 2, lua: CAS_SCRIPT });
  }
  if (typeof scripted.mssDel !== "function") {
    client.defineCommand("mssDel", { numberOfKeys: 2, lua: DELETE_SCRIPT });
  }
  if (typeof scripted.mssTouch !== "function") {
    client.defineCommand("mssTouch", { numberOfKeys: 1, lua: TOUCH_SCRIPT });
  }
}

/**
 * Sessions in Redis (standalone, Sentinel or Cluster) through ioredis. Every multi-step write is
 * one Lua script (EVALSHA, falling back to EVAL on NOSCRIPT); all keys of a session share a hash
 * tag; `updateSession` is an optimistic compare-and-set on the record's version.
 */
export class RedisSessionStore extends BaseStore {
  readonly backend = "redis" as const;
  protected readonly mode: StoreInternals["mode"];
  protected readonly locks: RedlockManager;
  readonly client: Client;
  private readonly ownsClient: boolean;
  private readonly lockClients: Redis[] = [];
  private readonly layout: KeyLayout;
  private readonly updates: KeyedQueue;
  private readonly target: string;
  private reportedDown = false;
  /** The last error the data client reported, to explain the generic errors that follow it. */
  private lastError: unknown;
  private readonly lockErrors = new Map<string, unknown>();
  private lockNodes: RedlockNode[] | undefined;
  private readonly missingLockNodes: string[] = [];
  private connectedOnce = false;
  /** Every call is raced against commandTimeout: a Cluster, or a client passed in by the user. */
  private readonly timed: boolean;
  private readonly watchdog: NodeJS.Timeout | undefined;
  private seen = 0;
  private stalled = 0;
  /**
   * Write fencing. A write that failed for its caller may still be in the client's queues (Cluster
   * redirections and failover retries, the offline queue of a client passed in) and land later.
   * Every write carries this store's id and a sequence number; after a failure, later writes carry
   * a floor above every write sent so far, which the scripts record on the record and use to
   * refuse the older ones (scripts.ts).
   */
  private readonly writer = randomBytes(6).toString("base64url");
  private seq = 0;
  private floor = 0;

  constructor(options: ResolvedOptions) {
    super(options);
    const redis = options.redis;
    if (
      redis === undefined ||
      (options.redisUrlGiven && !isClient(redis) && !isClusterConfig(redis))
    ) {
      checkRedisUrl(options.redisUrl);
    }
    if (isClient(redis)) {
      this.client = redis;
      this.ownsClient = false;
    } else if (isClusterConfig(redis)) {
      this.client = new Cluster(redis.clusterNodes, {
        lazyConnect: true,
        enableOfflineQueue: true,
        ...redis.clusterOptions,
        redisOptions: {
          connectTimeout: options.connectTimeout,
          commandTimeout: options.commandTimeout,
          ...redis.clusterOptions?.redisOptions,
        },
      });
      this.ownsClient = true;
    } else if (redis !== undefined) {
      // ioredis options with an explicit URL: the URL says where, the options how (e.g. TLS CA).
      this.client = options.redisUrlGiven
        ? new Redis(options.redisUrl, { ...clientOptions(options), ...redis })
        : new Redis({ ...clientOptions(options), ...redis });
      this.ownsClient = true;
    } else {
      this.client = new Redis(options.redisUrl, clientOptions(options));
      this.ownsClient = true;
    }
    this.mode = isCluster(this.client)
      ? "cluster"
      : (this.client.options.sentinels?.length ?? 0) > 0
        ? "sentinel"
        : "standalone";
    this.target = describeTarget(options, this.client);
    this.layout = new KeyLayout(options.prefix);
    this.updates = new KeyedQueue(
      options.commandTimeout,
      (ahead) =>
        new SessionStoreError(
          ErrorCode.BACKEND_UNAVAILABLE,
          `Redis at ${this.target} is unavailable: no answer within ${options.commandTimeout} ms to the ${ahead} earlier update(s) of this session; this update was not sent`,
        ),
    );
    this.timed = !this.ownsClient || this.mode === "cluster";
    if (!this.timed) {
      this.watchdog = setInterval(this.watch, Math.max(5, options.commandTimeout / WATCH_TICKS));
      this.watchdog.unref();
    }
    defineScripts(this.client);
    this.client.on("error", (err: Error) => this.onClientError(err));
    this.client.on("ready", () => {
      this.connectedOnce = true;
      this.lastError = undefined;
      if (this.reportedDown) {
        this.reportedDown = false;
        options.logger.info(`Redis at ${this.target} is reachable again`);
      }
    });

    const nodes: RedlockNode[] = [];
    if (options.lockNodes === undefined) {
      nodes.push({ client: this.client, name: describeClient(this.client, this.urlOfDataNode()) });
    } else {
      for (const node of options.lockNodes) {
        if (typeof node === "string") {
          const client = new Redis(node, clientOptions(options));
          const name = describeClient(client, node);
          client.on("error", (err: unknown) => {
            // Counted per node by the lock manager; kept here to explain a failed start.
            this.lockErrors.set(name, err);
          });
          this.lockClients.push(client);
          nodes.push({ client, name });
        } else {
          nodes.push({ client: node, name: describeClient(node) });
        }
      }
    }
    if (options.lockNodes !== undefined) this.lockNodes = nodes;
    this.locks = new RedlockManager({
      nodes,
      key: (id, suffix) => this.layout.key(id, suffix),
      notify: this.notify,
      commandTimeout: options.commandTimeout,
      logger: options.logger,
    });
  }

  private urlOfDataNode(): string | undefined {
    return this.options.redis === undefined ? this.options.redisUrl : undefined;
  }

  private onClientError(err: Error): void {
    this.lastError = err;
    // Before the first connection the factory reports the failure (and the fallback) itself.
    if (this.closed || this.reportedDown || !this.connectedOnce) return;
    this.reportedDown = true;
    const { cause } = describeFailure(err);
    this.options.logger.warn(
      `Lost the connection to Redis at ${this.target}: ${cause}; calls fail with ERR_BACKEND_UNAVAILABLE until it answers again (the store reconnects by itself)`,
    );
  }

  /**
   * Connects within `connectTimeout`: the data node, and a quorum of the `lockNodes` (the others
   * keep reconnecting and join when they answer). Throws ERR_BACKEND_UNAVAILABLE otherwise.
   */
  async connect(): Promise<void> {
    const timeoutMs = this.options.connectTimeout;
    const lockNodes = this.lockNodes ?? [];
    const [data, ...locks] = await Promise.all([
      settle(this.race(whenReady(this.client), timeoutMs)),
      ...lockNodes.map((node) => settle(this.race(whenReady(node.client), timeoutMs))),
    ]);
    let err: SessionStoreError | undefined;
    if (data !== undefined) {
      const { cause, hint } = describeFailure(data, this.lastError);
      err = new SessionStoreError(
        ErrorCode.BACKEND_UNAVAILABLE,
        `Cannot connect to Redis at ${this.target}: ${cause}; ${hint}`,
        { cause: data },
      );
    }
    const missing = lockNodes.flatMap((node, i) => {
      const failed = locks[i];
      if (failed === undefined) return [];
      const { cause } = describeFailure(failed, this.lockErrors.get(node.name));
      return [{ name: node.name, cause }];
    });
    const answered = lockNodes.length - missing.length;
    if (err === undefined && this.lockNodes !== undefined && answered < this.locks.quorum) {
      const list = missing.map((m) => `${m.name} (${m.cause})`).join(", ");
      err = new SessionStoreError(
        ErrorCode.BACKEND_UNAVAILABLE,
        `Only ${answered} of ${lockNodes.length} Redlock nodes answered within ${timeoutMs} ms, fewer than the quorum of ${this.locks.quorum}: ${list}; start them, or fix lockNodes`,
      );
    }
    if (err !== undefined) {
      await this.disconnect();
      throw err;
    }
    for (const m of missing) {
      this.options.logger.warn(
        `Redlock node ${m.name} is unreachable at start (${m.cause}); locks use the ${answered} other nodes of ${lockNodes.length} (quorum ${this.locks.quorum}) and the node joins when it answers`,
      );
      this.missingLockNodes.push(m.name);
    }
  }

  /** Where the data lives: a redacted URL, the seeds of a Cluster or the Sentinels. */
  describe(): string {
    return this.target;
  }

  /**
   * @internal Counts the lock nodes that were unreachable at start as node errors; the factory
   * calls it once the store's observers (the metrics) are attached.
   */
  reportStartErrors(): void {
    for (const name of this.missingLockNodes) this.notify("redlockNodeError", name);
  }

  protected override redisInternals(): StoreInternals["redis"] {
    return {
      client: this.client,
      key: (id, suffix) => this.layout.key(id, suffix),
      prefix: this.options.prefix,
      commandTimeout: this.options.commandTimeout,
    };
  }

  /**
   * One timer per store instead of one per command: when store calls are in flight and none has
   * completed for 7/8 of commandTimeout, the server has stopped answering (a frozen process, a
   * dead peer that sent no RST): the socket is destroyed, which rejects every call in flight
   * (ERR_BACKEND_UNAVAILABLE) within commandTimeout, and ioredis reconnects by itself.
   */
  private readonly watch = (): void => {
    if (this.inflight === 0 || this.completed !== this.seen) {
      this.seen = this.completed;
      this.stalled = 0;
      return;
    }
    if (++this.stalled < WATCH_TICKS - 1) return;
    this.stalled = 0;
    this.options.logger.warn(
      `Redis at ${this.target} answered nothing for ${this.options.commandTimeout} ms; reconnecting`,
    );
    // disconnect(true) closes the socket at once and reconnects: the calls in flight reject (the
    // client does not resend them) instead of waiting for a server that stopped answering.
    this.client.disconnect(true);
  };

  /** Races a call against `timeoutMs` (`budgetMs`: the whole allowance it is part of, for the message). */
  private race<T>(promise: Promise<T>, timeoutMs: number, budgetMs = timeoutMs): Promise<T> {
    const bounded = withTimeout(promise, timeoutMs);
    if (budgetMs === timeoutMs) return bounded;
    return bounded.catch((err: unknown) => {
      throw err instanceof TimeoutError ? new TimeoutError(budgetMs) : err;
    });
  }

  /** The hot path (get, set): BaseStore counts the call and maps its errors. */
  private bounded<T>(promise: Promise<T>): Promise<T> {
    return this.timed ? this.race(promise, this.options.commandTimeout) : promise;
  }

  /** Any other call: bounded by the watchdog or a race, errors turned into library errors. */
  private guard<T>(promise: Promise<T>, timeoutMs?: number): Promise<T> {
    if (timeoutMs !== undefined || this.timed) {
      return this.race(promise, timeoutMs ?? this.options.commandTimeout).catch(this.fail);
    }
    this.inflight++;
    return promise.then(
      (value) => {
        this.inflight--;
        this.completed++;
        return value;
      },
      (err: unknown) => {
        this.inflight--;
        this.completed++;
        throw this.failure(err);
      },
    );
  }

  /** ERR_BACKEND_UNAVAILABLE for any Redis failure (ERR_STORE_CLOSED once disconnected). */
  protected override failure(err: unknown): unknown {
    // Whatever was sent so far may land late: no write sent before now may land after a later one.
    this.floor = this.seq + 1;
    if (isSessionStoreError(err)) return err;
    if (this.closed) {
      return new SessionStoreError(ErrorCode.STORE_CLOSED, "The session store is disconnected", {
        cause: err,
      });
    }
    const { cause, hint } = describeFailure(err, this.lastError);
    return new SessionStoreError(
      ErrorCode.BACKEND_UNAVAILABLE,
      `Redis at ${this.target} is unavailable: ${cause}; ${hint}`,
      { cause: err },
    );
  }

  private readonly fail = (err: unknown): never => {
    throw this.failure(err);
  };

  private get scripts(): ScriptCommands {
    return this.client as unknown as ScriptCommands;
  }

  // The hot path: BaseStore maps errors of get and set through `failure` itself, which saves a
  // promise per call.
  protected doGet(id: string): Promise<string | null> {
    return this.bounded(this.client.hget(this.layout.key(id), "d"));
  }

  protected doSet(id: string, json: string, ttl: number): Promise<unknown> {
    const key = this.layout.key(id);
    // STALE counts as done: a later write of this store already replaced this one.
    return this.bounded(
      this.scripts.mssSet(
        key,
        `${key}:${TOMBSTONE}`,
        json,
        Math.ceil(ttl * 1000),
        Date.now(),
        this.writer,
        ++this.seq,
        this.floor,
      ),
    );
  }

  protected doUpdate<T>(
    id: string,
    fn: (current: T | null) => T | Promise<T>,
    ttl: number,
  ): Promise<T> {
    const key = this.layout.key(id);
    const tombstone = this.layout.key(id, TOMBSTONE);
    // One update per id at a time in this process; compare-and-set settles it across processes.
    return this.updates.run(id, async (slot) => {
      for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
        const [data, version, createdAt] = await this.step(slot, () =>
          this.client.hmget(key, "d", "v", "c"),
        );
        const next = await fn(data === null || data === undefined ? null : decode<T>(data));
        const json = this.encode(next);
        const result = await this.step(slot, () =>
          this.scripts.mssCas(
            key,
            tombstone,
            version ?? "",
            createdAt ?? "",
            json,
            Math.ceil(ttl * 1000),
            Date.now(),
            this.writer,
            ++this.seq,
            this.floor,
          ),
        );
        // STALE: an older attempt of this store may not land over a newer write; read again.
        if (result >= 0) {
          this.reportPayload("update", json);
          return decode<T>(json);
        }
        // Another instance wrote in between: back off a little (jittered) and read again.
        await new Promise((resolve) =>
          setTimeout(resolve, Math.random() * Math.min(2 ** attempt, 50)),
        );
      }
      throw new SessionStoreError(
        ErrorCode.CONFLICT,
        `updateSession: the session kept changing under the update; gave up after ${MAX_CAS_ATTEMPTS} attempts`,
      );
    });
  }

  /**
   * One command of an update: sent only while the update has budget left, bounded by what is
   * left of it (or by the watchdog), and charged to the updates queued behind it.
   */
  private step<T>(slot: QueueSlot, send: () => Promise<T>): Promise<T> {
    this.open();
    const left = slot.remaining();
    if (left <= 0) {
      return Promise.reject(
        this.failure(new Error(`no answer within ${this.options.commandTimeout} ms`)),
      );
    }
    const answer = this.timed
      ? this.race(send(), left, this.options.commandTimeout).catch(this.fail)
      : this.guard(send());
    return slot.waitFor(answer);
  }

  protected async doDelete(id: string): Promise<boolean> {
    const key = this.layout.key(id);
    // STALE: a later write of this store landed, so this delete counts as done before it.
    const tombstone = this.layout.key(id, TOMBSTONE);
    const tombstoneMs = Math.max(60_000, 30 * this.options.commandTimeout);
    return (
      (await this.guard(
        this.scripts.mssDel(key, tombstone, this.writer, ++this.seq, this.floor, tombstoneMs),
      )) > 0
    );
  }

  protected async doHas(id: string): Promise<boolean> {
    return (await this.guard(this.client.exists(this.layout.key(id)))) > 0;
  }

  protected async doTouch(id: string, ttl: number): Promise<boolean> {
    const key = this.layout.key(id);
    const ttlMs = Math.ceil(ttl * 1000);
    const result = await this.guard(
      this.scripts.mssTouch(key, ttlMs, this.writer, ++this.seq, this.floor),
    );
    // STALE: a later write of this store landed and set the expiry, so the record exists.
    return result === 1 || result === STALE;
  }

  protected async doTtl(id: string): Promise<number | null> {
    const ms = await this.guard(this.client.pttl(this.layout.key(id)));
    if (ms === -2) return null;
    // -1 (no expiry) cannot come from this store's writes; report it as unbounded.
    return ms === -1 ? Number.POSITIVE_INFINITY : ms / 1000;
  }

  /** The clients SCAN has to visit: every master of a Cluster, else the one client. */
  private scanTargets(): Redis[] {
    return isCluster(this.client) ? this.client.nodes("master") : [this.client];
  }

  /** Pages of record keys: SCAN MATCH over every master of a Cluster, else the one client. */
  private async *scanPages(): AsyncGenerator<string[]> {
    for (const node of this.scanTargets()) {
      let cursor = "0";
      do {
        this.open();
        const [next, keys] = await this.guard(
          node.scan(
            cursor,
            "MATCH",
            this.layout.recordPattern,
            "COUNT",
            SCAN_COUNT,
            "TYPE",
            "hash",
          ),
        );
        cursor = next;
        yield keys;
      } while (cursor !== "0");
    }
  }

  protected async *doList(limit: number): AsyncIterable<string> {
    if (limit <= 0) return;
    let n = 0;
    for await (const keys of this.scanPages()) {
      for (const key of keys) {
        const id = this.layout.idOf(key);
        if (id === undefined) continue;
        yield id;
        if (++n >= limit) return;
      }
    }
  }

  protected async countSessions(options?: { maxKeys?: number }): Promise<number | null> {
    const maxKeys = options?.maxKeys ?? Number.POSITIVE_INFINITY;
    let n = 0;
    for await (const keys of this.scanPages()) {
      n += keys.length;
      if (n > maxKeys) return null;
    }
    return n;
  }

  protected async doHealth(): Promise<StoreHealth> {
    const start = performance.now();
    try {
      await this.guard(this.client.ping(), this.options.commandTimeout);
      return {
        ok: true,
        backend: "redis",
        latencyMs: Math.round((performance.now() - start) * 1000) / 1000,
        detail: `${this.mode} ${this.target}`,
      };
    } catch (err) {
      return { ok: false, backend: "redis", detail: (err as Error).message };
    }
  }

  protected async doClose(): Promise<void> {
    clearInterval(this.watchdog);
    const owned: Client[] = [...this.lockClients];
    if (this.ownsClient) owned.push(this.client);
    await Promise.all(
      owned.map(async (client) => {
        try {
          if (client.status === "ready") await client.quit();
          else client.disconnect();
        } catch {
          client.disconnect();
        }
      }),
    );
  }
}
