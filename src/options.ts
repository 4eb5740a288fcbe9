import { ErrorCode, SessionStoreError } from "./errors.js";
import type { Logger, SessionStoreOptions } from "./types.js";

/** Longest TTL accepted: one year, in seconds. */
export const MAX_TTL_SECONDS = 365 * 24 * 3600;

/** The defaults of `SessionStoreOptions`. */
export const DEFAULTS = Object.freeze({
  redisUrl: "redis://localhost:6379",
  prefix: "mcp:session:",
  defaultTtl: 3600,
  lockTimeout: 30_000,
  preferMemory: false,
  fallback: "memory" as "memory" | "error",
  connectTimeout: 1000,
  commandTimeout: 2000,
  maxPayloadBytes: 1_048_576,
  verbose: false,
});

/** Options with every default applied and validated. */
export interface ResolvedOptions {
  redisUrl: string;
  /** Whether `redisUrl` came from the caller (not the environment or the default). */
  redisUrlGiven: boolean;
  redis: SessionStoreOptions["redis"];
  prefix: string;
  defaultTtl: number;
  lockTimeout: number;
  lockNodes: NonNullable<SessionStoreOptions["lockNodes"]> | undefined;
  preferMemory: boolean;
  fallback: "memory" | "error";
  connectTimeout: number;
  commandTimeout: number;
  maxPayloadBytes: number;
  verbose: boolean;
  logger: Logger;
  instrumentation: SessionStoreOptions["instrumentation"];
}

function invalid(option: string, message: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.INVALID_ARGUMENT,
    `Invalid option "${option}": ${message}`,
    {
      details: { option },
    },
  );
}

function positiveNumber(name: string, value: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > max) {
    throw invalid(name, `expected a finite number > 0 and <= ${max}, got ${String(value)}`);
  }
  return value;
}

/** A logger that prints info only when verbose; warnings and errors always. */
export function defaultLogger(verbose: boolean): Logger {
  return {
    info: (message, ...args) => {
      if (verbose) console.info(`[mcp-session-store] ${message}`, ...args);
    },
    warn: (message, ...args) => console.warn(`[mcp-session-store] ${message}`, ...args),
    error: (message, ...args) => console.error(`[mcp-session-store] ${message}`, ...args),
  };
}

/** Applies the defaults (with `??`) and validates; throws `ERR_INVALID_ARGUMENT` naming the option. */
/**
 * The Redis URL to use: `given` unless empty, else `REDIS_URL` trimmed unless blank, else the
 * default. An empty value is unset (docker-compose turns an unset `${REDIS_URL}` into "").
 */
export function redisUrlFrom(given: string | undefined): string {
  const envUrl = process.env.REDIS_URL?.trim() ? process.env.REDIS_URL.trim() : undefined;
  return (given === "" ? undefined : given) ?? envUrl ?? DEFAULTS.redisUrl;
}

export function resolveOptions(options: SessionStoreOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== "object") {
    throw invalid("options", "expected an object");
  }
  // The URL is checked by the Redis store only: a memory store never needs one.
  const redisUrl = redisUrlFrom(options.redisUrl);
  const prefix = options.prefix ?? DEFAULTS.prefix;
  if (typeof prefix !== "string" || prefix.length > 256 || /[{}\s]/.test(prefix)) {
    throw invalid("prefix", "expected a string of at most 256 characters without braces or spaces");
  }
  const fallback = options.fallback ?? DEFAULTS.fallback;
  if (fallback !== "memory" && fallback !== "error") {
    throw invalid("fallback", `expected "memory" or "error", got ${String(fallback)}`);
  }
  const verbose = options.verbose ?? DEFAULTS.verbose;
  const logger = options.logger ?? defaultLogger(verbose);
  if (
    typeof logger !== "object" ||
    typeof logger.info !== "function" ||
    typeof logger.warn !== "function" ||
    typeof logger.error !== "function"
  ) {
    throw invalid("logger", "expected { info, warn, error } functions");
  }
  if (
    options.lockNodes !== undefined &&
    (!Array.isArray(options.lockNodes) || options.lockNodes.length === 0)
  ) {
    throw invalid("lockNodes", "expected a non-empty array of Redis URLs or clients");
  }
  if (
    options.instrumentation !== undefined &&
    options.instrumentation !== false &&
    typeof options.instrumentation !== "object"
  ) {
    throw invalid("instrumentation", "expected false or an options object");
  }
  return {
    redisUrl,
    redisUrlGiven: options.redisUrl !== undefined && options.redisUrl !== "",
    redis: options.redis,
    prefix,
    defaultTtl: positiveNumber(
      "defaultTtl",
      options.defaultTtl ?? DEFAULTS.defaultTtl,
      MAX_TTL_SECONDS,
    ),
    lockTimeout: positiveNumber(
      "lockTimeout",
      options.lockTimeout ?? DEFAULTS.lockTimeout,
      2 ** 31 - 1,
    ),
    lockNodes: options.lockNodes,
    preferMemory: Boolean(options.preferMemory ?? DEFAULTS.preferMemory),
    fallback,
    connectTimeout: positiveNumber(
      "connectTimeout",
      options.connectTimeout ?? DEFAULTS.connectTimeout,
      600_000,
    ),
    commandTimeout: positiveNumber(
      "commandTimeout",
      options.commandTimeout ?? DEFAULTS.commandTimeout,
      600_000,
    ),
    maxPayloadBytes: positiveNumber(
      "maxPayloadBytes",
      options.maxPayloadBytes ?? DEFAULTS.maxPayloadBytes,
      512 * 1024 * 1024,
    ),
    verbose: Boolean(verbose),
    logger,
    instrumentation: options.instrumentation,
  };
}

/** Throws `ERR_INVALID_ARGUMENT` unless `url` is a redis:// or rediss:// URL (never printing it whole). */
export function checkRedisUrl(url: unknown): string {
  if (typeof url !== "string" || !/^rediss?:\/\/[^\s]/.test(url)) {
    throw invalid(
      "redisUrl",
      "expected a redis:// or rediss:// URL (from the redisUrl option, else the REDIS_URL environment variable)",
    );
  }
  return url;
}

/** Validates a session TTL in seconds (finite, > 0, at most one year). */
export function checkTtl(ttl: unknown, name = "ttl"): number {
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0 || ttl > MAX_TTL_SECONDS) {
    throw invalid(
      name,
      `expected seconds, finite, > 0 and <= ${MAX_TTL_SECONDS}, got ${String(ttl)}`,
    );
  }
  return ttl;
}

/** Validates a duration in ms (finite, >= min). */
export function checkMs(value: unknown, name: string, min = 1): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > 2 ** 31 - 1) {
    throw invalid(name, `expected milliseconds, finite, >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Query parameters of a Redis URL that are never secret; every other value is redacted. */
const PLAIN_PARAMS = new Set([
  "db",
  "family",
  "tls",
  "connectTimeout",
  "commandTimeout",
  "keepAlive",
]);

/**
 * `redis://user:***@host:port/db?password=***`: never a password in a log, error or metric. ioredis
 * reads credentials from the userinfo and from any query parameter (`?password=`,
 * `?username=`, `?sentinelPassword=`...), so every query value outside a short list of plain
 * settings is redacted too.
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    for (const key of new Set(u.searchParams.keys())) {
      if (!PLAIN_PARAMS.has(key)) u.searchParams.set(key, "***");
    }
    return u.toString().replace(/\/$/, "");
  } catch {
    return url
      .replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@")
      .replace(/([?&][^=&#]*=)[^&#]*/g, "$1***");
  }
}
