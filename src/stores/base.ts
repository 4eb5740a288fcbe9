import { checkId, decode, encode } from "../codec.js";
import { ErrorCode, SessionStoreError } from "../errors.js";
import type { LockManager, NotifyObservers } from "../locks/types.js";
import { runWithLock } from "../locks/with-lock.js";
import { checkMs, checkTtl, type ResolvedOptions } from "../options.js";
import {
  type Backend,
  internals,
  type ListOptions,
  type Lock,
  type LockOptions,
  type SessionStore,
  type SetOptions,
  type StoreHealth,
  type StoreInternals,
  type StoreObserver,
} from "../types.js";

/**
 * What both backends share: argument checks, the closed state, observers and `withLock`.
 * Subclasses implement the `do*` methods with already validated arguments.
 */
export abstract class BaseStore implements SessionStore {
  abstract readonly backend: Backend;
  protected readonly options: ResolvedOptions;
  protected closed = false;
  /** Backend calls in flight and completed (get/set here; the Redis store's watchdog reads them). */
  protected inflight = 0;
  protected completed = 0;
  private closing: Promise<void> | undefined;
  private readonly observers = new Set<StoreObserver>();
  protected abstract readonly locks: LockManager;

  constructor(options: ResolvedOptions) {
    this.options = options;
  }

  /** Calls observer hooks; an observer that throws never reaches the store's caller. */
  protected readonly notify: NotifyObservers = (hook, ...args) => {
    for (const observer of this.observers) {
      try {
        (observer[hook] as ((...a: unknown[]) => void) | undefined)?.(...args);
      } catch {
        // Telemetry must never change a store result.
      }
    }
  };

  /** The error a failed `doGet`/`doSet` rejects with (the backend maps its client's errors). */
  protected failure(err: unknown): unknown {
    return err;
  }

  /** Payload bytes for the instrumentation; not even measured when nobody observes. */
  protected reportPayload(operation: "get" | "set" | "update", json: string): void {
    if (this.observers.size > 0) this.notify("payloadSize", operation, Buffer.byteLength(json));
  }

  protected abstract readonly mode: StoreInternals["mode"];
  /** May answer synchronously (memory): the hot path then skips a promise hop. */
  protected abstract doGet(id: string): string | null | Promise<string | null>;
  protected abstract doSet(id: string, json: string, ttl: number): unknown;
  protected abstract doUpdate<T>(
    id: string,
    fn: (current: T | null) => T | Promise<T>,
    ttl: number,
  ): Promise<T>;
  protected abstract doDelete(id: string): Promise<boolean>;
  protected abstract doHas(id: string): Promise<boolean>;
  protected abstract doTouch(id: string, ttl: number): Promise<boolean>;
  protected abstract doTtl(id: string): Promise<number | null>;
  protected abstract doList(limit: number): AsyncIterable<string>;
  protected abstract doHealth(): Promise<StoreHealth>;
  protected abstract doClose(): Promise<void>;
  protected abstract countSessions(options?: { maxKeys?: number }): Promise<number | null>;
  protected fallback = false;
  protected redisInternals(): StoreInternals["redis"] {
    return undefined;
  }

  get [internals](): StoreInternals {
    return {
      mode: this.mode,
      fallback: this.fallback,
      observe: (observer) => {
        this.observers.add(observer);
        return () => this.observers.delete(observer);
      },
      countSessions: (options) => this.countSessions(options),
      redis: this.redisInternals(),
    };
  }

  protected open(): void {
    if (this.closed) {
      throw new SessionStoreError(ErrorCode.STORE_CLOSED, "The session store is disconnected");
    }
  }

  private ttlOf(options: SetOptions | undefined): number {
    if (options !== undefined && (options === null || typeof options !== "object")) {
      throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "options must be an object");
    }
    return options?.ttl === undefined ? this.options.defaultTtl : checkTtl(options.ttl);
  }

  // Methods are arrow properties so they work detached from the store (`const { getSession } = store`).
  getSession = async <T = unknown>(id: string): Promise<T | null> => {
    this.open();
    checkId(id);
    let json: string | null;
    this.inflight++;
    try {
      const answer = this.doGet(id);
      json = typeof answer === "object" && answer !== null ? await answer : answer;
    } catch (err) {
      throw this.failure(err);
    } finally {
      this.inflight--;
      this.completed++;
    }
    if (json === null) return null;
    this.reportPayload("get", json);
    return decode<T>(json);
  };

  setSession = async <T = unknown>(id: string, data: T, options?: SetOptions): Promise<void> => {
    this.open();
    checkId(id);
    const ttl = this.ttlOf(options);
    const json = this.encode(data);
    this.inflight++;
    try {
      const done = this.doSet(id, json, ttl);
      if (done instanceof Promise) await done;
    } catch (err) {
      throw this.failure(err);
    } finally {
      this.inflight--;
      this.completed++;
    }
    this.reportPayload("set", json);
  };

  updateSession = async <T = unknown>(
    id: string,
    fn: (current: T | null) => T | Promise<T>,
    options?: SetOptions,
  ): Promise<T> => {
    this.open();
    checkId(id);
    if (typeof fn !== "function") {
      throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "updateSession needs a function");
    }
    return this.doUpdate(id, fn, this.ttlOf(options));
  };

  deleteSession = async (id: string): Promise<boolean> => {
    this.open();
    checkId(id);
    return this.doDelete(id);
  };

  hasSession = async (id: string): Promise<boolean> => {
    this.open();
    checkId(id);
    return this.doHas(id);
  };

  touchSession = async (id: string, ttl?: number): Promise<boolean> => {
    this.open();
    checkId(id);
    return this.doTouch(id, ttl === undefined ? this.options.defaultTtl : checkTtl(ttl));
  };

  getSessionTtl = async (id: string): Promise<number | null> => {
    this.open();
    checkId(id);
    return this.doTtl(id);
  };

  listSessions = (options?: ListOptions): AsyncIterable<string> => {
    const limit = options?.limit ?? Number.POSITIVE_INFINITY;
    if (typeof limit !== "number" || Number.isNaN(limit) || limit < 0) {
      throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "listSessions: limit must be >= 0");
    }
    const self = this;
    return {
      [Symbol.asyncIterator]() {
        self.open();
        return self.doList(limit)[Symbol.asyncIterator]();
      },
    };
  };

  acquireLock = async (id: string, options?: LockOptions): Promise<Lock> => {
    this.open();
    checkId(id);
    const ttlMs =
      options?.ttl === undefined ? this.options.lockTimeout : checkMs(options.ttl, "ttl");
    const waitTimeoutMs =
      options?.waitTimeout === undefined ? ttlMs : checkMs(options.waitTimeout, "waitTimeout", 0);
    const signal = options?.signal;
    if (signal?.aborted) {
      throw new SessionStoreError(ErrorCode.ABORTED, "Lock acquisition aborted", {
        cause: signal.reason,
      });
    }
    return this.locks.acquire(id, { ttlMs, waitTimeoutMs, signal });
  };

  withLock = async <T>(
    id: string,
    fn: (lock: Lock) => Promise<T>,
    options?: LockOptions,
  ): Promise<T> => {
    if (typeof fn !== "function") {
      throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "withLock needs a function");
    }
    return runWithLock(() => this.acquireLock(id, options), fn);
  };

  health = async (): Promise<StoreHealth> => {
    if (this.closed) return { ok: false, backend: this.backend, detail: "disconnected" };
    return this.doHealth();
  };

  disconnect = async (): Promise<void> => {
    this.closed = true;
    this.closing ??= (async () => {
      await this.locks.close();
      await this.doClose();
    })();
    return this.closing;
  };

  [Symbol.asyncDispose](): Promise<void> {
    return this.disconnect();
  }

  protected encode(data: unknown): string {
    return encode(data, this.options.maxPayloadBytes);
  }
}
