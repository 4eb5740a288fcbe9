import { randomBytes } from "node:crypto";
import type { Registry } from "prom-client";
import { ErrorCode, errorCodeOf, SessionStoreError } from "../errors.js";
import { KeyLayout } from "../stores/keys.js";
import { type RedisAccess, type RedisClient, redisCall, safely } from "./support.js";
import { type V2Metrics, v2Metrics } from "./v2/metrics.js";

/** Who is asking: a handle answers only the principal that created it. */
export interface HandleCaller {
  /** The caller's identity, e.g. `authInfo.clientId` or the token's subject. */
  principal: string;
}

/** Options of `handles.create` and `handles.touch`. */
export interface HandleLifetime extends HandleCaller {
  /** Lifetime in seconds; `touch` restarts it (sliding). @default the store's `defaultTtl` */
  ttl?: number;
}

/** Options of `createHandleStore`. */
export interface HandleStoreOptions {
  /** Redis behind the session store (`redisAccessOf(store)`); `undefined` keeps handles in memory. */
  redis: RedisAccess | undefined;
  /** Key prefix; keys are `<prefix>h:{<handle>}`. @default the store's prefix, else "mcp:" */
  prefix?: string;
  registry: Registry;
  /** Lifetime of a handle when `create` names none, in seconds. @default 3600 */
  defaultTtl?: number;
  /** Longest lifetime a caller may ask for, in seconds. @default 604800 (7 days) */
  maxTtl?: number;
  /** How long after expiry `ERR_HANDLE_EXPIRED` is still told apart from "not found", in seconds. @default 86400 */
  expiredRetention?: number;
  /** Largest serialized data, in bytes. @default 1048576 */
  maxBytes?: number;
  /** Attempts of `update` when concurrent writers keep winning. @default 100 */
  maxUpdateAttempts?: number;
}

export const HANDLE_DEFAULTS = Object.freeze({
  defaultTtl: 3600,
  maxTtl: 7 * 24 * 3600,
  expiredRetention: 24 * 3600,
  maxBytes: 1 << 20,
  maxUpdateAttempts: 100,
});

/** What a backend answers for a lookup. */
type Lookup = { status: "ok"; data: string; version: string } | { status: "expired" | "missing" };

/** The two backends answer the same five primitives; `HandleStore` adds everything else. */
interface HandleBackend {
  insert(
    handle: string,
    principal: string,
    data: string,
    ttlMs: number,
    retentionMs: number,
  ): Promise<void>;
  read(handle: string, principal: string): Promise<Lookup>;
  /** "conflict" when the version moved, "gone" when the record is no longer there for `principal`. */
  write(
    handle: string,
    principal: string,
    version: string,
    data: string,
  ): Promise<"ok" | "conflict" | "gone">;
  /** The new expiresAt (epoch ms), or why not. */
  touch(
    handle: string,
    principal: string,
    ttlMs: number | undefined,
    retentionMs: number,
  ): Promise<number | "expired" | "missing">;
  remove(handle: string, principal: string): Promise<boolean>;
  close(): void;
}

const HANDLE = /^h_[A-Za-z0-9_-]{32}$/;

/**
 * Server-minted handles: opaque ids (192 random bits) for state a tool keeps across calls, bound
 * to the principal that created them, with a sliding lifetime. Another principal's handle answers
 * exactly as an unknown one (`ERR_HANDLE_NOT_FOUND`); an expired one answers `ERR_HANDLE_EXPIRED`
 * for `expiredRetention` seconds, so a tool can tell the model to start again.
 *
 * @example
 * const handle = await handles.create({ cart: [] }, { principal: "alice", ttl: 600 });
 * await handles.update(handle, (s) => ({ cart: [...s.cart, "book"] }), { principal: "alice" });
 */
export class HandleStore {
  private readonly settings: Required<Omit<HandleStoreOptions, "redis" | "prefix" | "registry">>;
  private readonly metrics: V2Metrics;

  constructor(
    private readonly backend: HandleBackend,
    options: HandleStoreOptions,
  ) {
    this.settings = {
      defaultTtl: options.defaultTtl ?? HANDLE_DEFAULTS.defaultTtl,
      maxTtl: options.maxTtl ?? HANDLE_DEFAULTS.maxTtl,
      expiredRetention: options.expiredRetention ?? HANDLE_DEFAULTS.expiredRetention,
      maxBytes: options.maxBytes ?? HANDLE_DEFAULTS.maxBytes,
      maxUpdateAttempts: options.maxUpdateAttempts ?? HANDLE_DEFAULTS.maxUpdateAttempts,
    };
    for (const [field, value] of Object.entries(this.settings))
      if (!(Number.isFinite(value) && value > 0))
        throw invalid(`${field} must be a positive number (got ${String(value)})`);
    this.metrics = v2Metrics(options.registry);
  }

  /** Stores `data` (JSON) under a new handle. */
  create(data: unknown, options: HandleLifetime): Promise<string> {
    return this.measure("create", async () => {
      const principal = principalOf(options);
      const ttlMs = this.ttlMs(options.ttl) ?? this.settings.defaultTtl * 1000;
      const handle = `h_${randomBytes(24).toString("base64url")}`;
      await this.backend.insert(handle, principal, this.encode(data), ttlMs, this.retentionMs());
      return handle;
    });
  }

  /** The data of `handle`. @throws ERR_HANDLE_NOT_FOUND, ERR_HANDLE_EXPIRED */
  get<T = unknown>(handle: string, options: HandleCaller): Promise<T> {
    return this.measure("get", async () => {
      const found = await this.lookup(handle, principalOf(options));
      return JSON.parse(found.data) as T;
    });
  }

  /**
   * Replaces the data with `fn(current)`, atomically: a concurrent writer makes `fn` run again on
   * the newer data, so no update is lost. The lifetime is left as it was.
   * @throws ERR_HANDLE_NOT_FOUND, ERR_HANDLE_EXPIRED, ERR_CONFLICT after `maxUpdateAttempts`
   */
  update<T = unknown>(
    handle: string,
    fn: (current: T) => T | Promise<T>,
    options: HandleCaller,
  ): Promise<T> {
    return this.measure("update", async () => {
      const principal = principalOf(options);
      for (let attempt = 1; attempt <= this.settings.maxUpdateAttempts; attempt++) {
        const found = await this.lookup(handle, principal);
        const next = await fn(JSON.parse(found.data) as T);
        const data = this.encode(next);
        const outcome = await this.backend.write(handle, principal, found.version, data);
        if (outcome === "ok") return JSON.parse(data) as T;
        // Jittered backoff, so writers on several instances stop colliding in lockstep.
        if (outcome === "conflict")
          await new Promise((r) => setTimeout(r, Math.random() * 2 ** Math.min(attempt, 5)));
      }
      throw new SessionStoreError(
        ErrorCode.CONFLICT,
        `handle update lost to concurrent writers ${this.settings.maxUpdateAttempts} times`,
      );
    });
  }

  /** Deletes `handle`; false when there was no live handle of this principal. */
  delete(handle: string, options: HandleCaller): Promise<boolean> {
    return this.measure("delete", async () => {
      const principal = principalOf(options);
      if (!wellFormed(handle)) return false;
      return this.backend.remove(handle, principal);
    });
  }

  /**
   * Restarts the lifetime (`ttl`, else the one it was created or last touched with).
   * @returns the new expiry, epoch ms
   * @throws ERR_HANDLE_NOT_FOUND, ERR_HANDLE_EXPIRED
   */
  touch(handle: string, options: HandleLifetime): Promise<number> {
    return this.measure("touch", async () => {
      const principal = principalOf(options);
      const ttlMs = this.ttlMs(options.ttl);
      if (!wellFormed(handle)) throw notFound();
      const out = await this.backend.touch(handle, principal, ttlMs, this.retentionMs());
      if (out === "missing") throw notFound();
      if (out === "expired") throw expired();
      return out;
    });
  }

  /** Releases timers (memory); the Redis client belongs to the session store. */
  async close(): Promise<void> {
    this.backend.close();
  }

  private async lookup(
    handle: string,
    principal: string,
  ): Promise<{ data: string; version: string }> {
    if (!wellFormed(handle)) throw notFound();
    const found = await this.backend.read(handle, principal);
    if (found.status === "ok") return found;
    throw found.status === "expired" ? expired() : notFound();
  }

  private ttlMs(ttl: number | undefined): number | undefined {
    if (ttl === undefined) return undefined;
    if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0 || ttl > this.settings.maxTtl)
      throw invalid(
        `ttl must be a number of seconds in (0, ${this.settings.maxTtl}] (got ${String(ttl)})`,
      );
    return Math.ceil(ttl * 1000);
  }

  private retentionMs(): number {
    return this.settings.expiredRetention * 1000;
  }

  private encode(data: unknown): string {
    let text: string | undefined;
    try {
      text = JSON.stringify(data);
    } catch (cause) {
      throw new SessionStoreError(ErrorCode.SERIALIZATION, "handle data is not JSON-serializable", {
        cause,
      });
    }
    if (text === undefined) throw invalid("handle data must be a JSON value (got undefined)");
    const bytes = Buffer.byteLength(text);
    if (bytes > this.settings.maxBytes)
      throw new SessionStoreError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        `handle data is ${bytes} bytes, over maxBytes ${this.settings.maxBytes}`,
      );
    return text;
  }

  private async measure<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      safely(() => this.metrics.handleOperations.inc({ operation, outcome: "ok" }));
      return result;
    } catch (err) {
      safely(() => this.metrics.handleOperations.inc({ operation, outcome: outcomeOf(err) }));
      throw err;
    }
  }
}

function outcomeOf(err: unknown): string {
  const code = errorCodeOf(err);
  if (code === ErrorCode.HANDLE_NOT_FOUND) return "not_found";
  if (code === ErrorCode.HANDLE_EXPIRED) return "expired";
  if (code === ErrorCode.INVALID_ARGUMENT) return "invalid";
  if (code === ErrorCode.CONFLICT) return "conflict";
  return "error";
}

function invalid(message: string): SessionStoreError {
  return new SessionStoreError(ErrorCode.INVALID_ARGUMENT, message);
}

function notFound(): SessionStoreError {
  return new SessionStoreError(ErrorCode.HANDLE_NOT_FOUND, "handle not found");
}

function expired(): SessionStoreError {
  return new SessionStoreError(ErrorCode.HANDLE_EXPIRED, "handle expired: start again");
}

function wellFormed(handle: unknown): handle is string {
  if (typeof handle !== "string" || handle.length === 0 || handle.length > 256)
    throw invalid("handle must be a non-empty string of at most 256 characters");
  return HANDLE.test(handle);
}

function principalOf(options: HandleCaller | undefined): string {
  const principal = options?.principal;
  if (typeof principal !== "string" || principal.length === 0 || principal.length > 1024)
    throw invalid("principal must be a non-empty string of at most 1024 characters");
  return principal;
}

/** Handles in this process: the same answers as Redis, for tests and single instances. */
class MemoryHandles implements HandleBackend {
  private readonly records = new Map<
    string,
    { principal: string; data: string; version: number; expiresAt: number; ttlMs: number }
  >();
  /** Outlives a record by the retention: who owned the handle, and until when it is remembered. */
  private readonly tombstones = new Map<string, { principal: string; until: number }>();
  private readonly sweeper = setInterval(() => this.sweep(), 60_000).unref();

  async insert(
    handle: string,
    principal: string,
    data: string,
    ttlMs: number,
    retentionMs: number,
  ) {
    const expiresAt = Date.now() + ttlMs;
    this.records.set(handle, { principal, data, version: 1, expiresAt, ttlMs });
    this.tombstones.set(handle, { principal, until: expiresAt + retentionMs });
  }

  async read(handle: string, principal: string): Promise<Lookup> {
    const record = this.live(handle);
    if (record !== undefined)
      return record.principal === principal
        ? { status: "ok", data: record.data, version: String(record.version) }
        : { status: "missing" };
    return this.tombstoneOf(handle, principal) ? { status: "expired" } : { status: "missing" };
  }

  async write(handle: string, principal: string, version: string, data: string) {
    const record = this.live(handle);
    if (record === undefined || record.principal !== principal) return "gone" as const;
    if (String(record.version) !== version) return "conflict" as const;
    record.data = data;
    record.version += 1;
    return "ok" as const;
  }

  async touch(handle: string, principal: string, ttlMs: number | undefined, retentionMs: number) {
    const record = this.live(handle);
    if (record === undefined)
      return this.tombstoneOf(handle, principal) ? ("expired" as const) : ("missing" as const);
    if (record.principal !== principal) return "missing" as const;
    record.ttlMs = ttlMs ?? record.ttlMs;
    record.expiresAt = Date.now() + record.ttlMs;
    this.tombstones.set(handle, { principal, until: record.expiresAt + retentionMs });
    return record.expiresAt;
  }

  async remove(handle: string, principal: string): Promise<boolean> {
    const record = this.live(handle);
    if (record === undefined) {
      if (this.tombstoneOf(handle, principal)) this.tombstones.delete(handle);
      return false;
    }
    if (record.principal !== principal) return false;
    this.records.delete(handle);
    this.tombstones.delete(handle);
    return true;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private live(handle: string) {
    const record = this.records.get(handle);
    if (record !== undefined && record.expiresAt <= Date.now()) {
      this.records.delete(handle);
      return undefined;
    }
    return record;
  }

  private tombstoneOf(handle: string, principal: string): boolean {
    const tomb = this.tombstones.get(handle);
    if (tomb === undefined) return false;
    if (tomb.until <= Date.now()) {
      this.tombstones.delete(handle);
      return false;
    }
    return tomb.principal === principal;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [handle, record] of this.records)
      if (record.expiresAt <= now) this.records.delete(handle);
    for (const [handle, tomb] of this.tombstones)
      if (tomb.until <= now) this.tombstones.delete(handle);
  }
}

/**
 * KEYS record, tombstone. Record: hash p (principal), d (data), v (version), t (ttl ms), with the
 * handle's expiry; the tombstone holds the principal and outlives it by the retention.
 */
const READ = `
local r = redis.call('HMGET', KEYS[1], 'p', 'd', 'v')
if r[1] then
  if r[1] == ARGV[1] then return {1, r[2], r[3]} end
  return {0}
end
if redis.call('GET', KEYS[2]) == ARGV[1] then return {2} end
return {0}
`;
/** ARGV principal, data, ttlMs, tombstone ttl ms. */
const INSERT = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'p', ARGV[1], 'd', ARGV[2], 'v', 1, 't', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
return 1
`;
/** KEYS record; ARGV principal, version, data. 1 written, -1 version moved, -2 gone. HSET keeps the TTL. */
const WRITE = `
local r = redis.call('HMGET', KEYS[1], 'p', 'v')
if (not r[1]) or r[1] ~= ARGV[1] then return -2 end
if r[2] ~= ARGV[2] then return -1 end
redis.call('HSET', KEYS[1], 'd', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'v', 1)
return 1
`;
/** ARGV principal, ttlMs ('' keeps the last one), nowMs, retentionMs. expiresAt, -1 missing, -2 expired. */
const TOUCH = `
local r = redis.call('HMGET', KEYS[1], 'p', 't')
if not r[1] then
  if redis.call('GET', KEYS[2]) == ARGV[1] then return -2 end
  return -1
end
if r[1] ~= ARGV[1] then return -1 end
local ttl = tonumber(ARGV[2]) or tonumber(r[2])
redis.call('HSET', KEYS[1], 't', ARGV[2] ~= '' and ARGV[2] or r[2])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl + tonumber(ARGV[4]))
return tonumber(ARGV[3]) + ttl
`;
/** ARGV principal. 1 deleted, 0 not this principal's live handle. */
const REMOVE = `
local p = redis.call('HGET', KEYS[1], 'p')
if p == ARGV[1] then redis.call('DEL', KEYS[1], KEYS[2]) return 1 end
if (not p) and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 0
`;

type Scripted = RedisClient & {
  mssHandleRead(rec: string, tomb: string, principal: string): Promise<unknown[]>;
  mssHandleInsert(rec: string, tomb: string, ...args: Array<string | number>): Promise<number>;
  mssHandleWrite(rec: string, principal: string, version: string, data: string): Promise<number>;
  mssHandleTouch(rec: string, tomb: string, ...args: Array<string | number>): Promise<number>;
  mssHandleRemove(rec: string, tomb: string, principal: string): Promise<number>;
};

/** Handles on Redis: `<prefix>h:{<handle>}` and its tombstone `<prefix>h:{<handle>}:x`, one slot. */
class RedisHandles implements HandleBackend {
  private readonly keys: KeyLayout;
  private readonly client: Scripted;

  constructor(
    private readonly access: RedisAccess,
    prefix: string,
  ) {
    this.keys = new KeyLayout(`${prefix}h:`);
    const client = access.client as Scripted;
    // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT.
    const scripts: Array<[string, number, string]> = [
      ["mssHandleRead", 2, READ],
      ["mssHandleInsert", 2, INSERT],
      ["mssHandleWrite", 1, WRITE],
      ["mssHandleTouch", 2, TOUCH],
      ["mssHandleRemove", 2, REMOVE],
    ];
    for (const [name, numberOfKeys, lua] of scripts)
      if (typeof (client as unknown as Record<string, unknown>)[name] !== "function")
        client.defineCommand(name, { numberOfKeys, lua });
    this.client = client;
  }

  async insert(
    handle: string,
    principal: string,
    data: string,
    ttlMs: number,
    retentionMs: number,
  ) {
    const [rec, tomb] = this.keysOf(handle);
    await redisCall(this.access, "handle create", () =>
      this.client.mssHandleInsert(rec, tomb, principal, data, ttlMs, ttlMs + retentionMs),
    );
  }

  async read(handle: string, principal: string): Promise<Lookup> {
    const [rec, tomb] = this.keysOf(handle);
    const r = await redisCall(this.access, "handle read", () =>
      this.client.mssHandleRead(rec, tomb, principal),
    );
    if (r[0] === 1) return { status: "ok", data: String(r[1]), version: String(r[2]) };
    return { status: r[0] === 2 ? "expired" : "missing" };
  }

  async write(handle: string, principal: string, version: string, data: string) {
    const [rec] = this.keysOf(handle);
    const r = await redisCall(this.access, "handle update", () =>
      this.client.mssHandleWrite(rec, principal, version, data),
    );
    return r === 1 ? ("ok" as const) : r === -1 ? ("conflict" as const) : ("gone" as const);
  }

  async touch(handle: string, principal: string, ttlMs: number | undefined, retentionMs: number) {
    const [rec, tomb] = this.keysOf(handle);
    const r = await redisCall(this.access, "handle touch", () =>
      this.client.mssHandleTouch(rec, tomb, principal, ttlMs ?? "", Date.now(), retentionMs),
    );
    if (r === -1) return "missing" as const;
    if (r === -2) return "expired" as const;
    return r;
  }

  async remove(handle: string, principal: string): Promise<boolean> {
    const [rec, tomb] = this.keysOf(handle);
    const r = await redisCall(this.access, "handle delete", () =>
      this.client.mssHandleRemove(rec, tomb, principal),
    );
    return r === 1;
  }

  close(): void {}

  private keysOf(handle: string): [string, string] {
    return [this.keys.key(handle), this.keys.key(handle, "x")];
  }
}

/**
 * A `HandleStore` on `options.redis`, or in memory when it is `undefined`: same semantics.
 *
 * @example
 * const handles = createHandleStore({ redis: redisAccessOf(store), registry: new Registry() });
 * const handle = await handles.create({ step: 1 }, { principal: "alice" });
 */
export function createHandleStore(options: HandleStoreOptions): HandleStore {
  const backend =
    options.redis === undefined
      ? new MemoryHandles()
      : new RedisHandles(options.redis, options.prefix ?? options.redis.prefix);
  try {
    return new HandleStore(backend, options);
  } catch (err) {
    backend.close();
    throw err;
  }
}
