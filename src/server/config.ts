/**
 * Configuration of the reference server, read from the environment (one table in
 * docs/server.md). An empty variable counts as unset (docker-compose's `${VAR}` of an unset
 * variable is empty). Invalid values stop the server at start with a message naming the variable.
 */

/** How the session store is chosen. */
export type StoreMode = "memory" | "redis" | "auto";

/** Which tools, resources and prompts the server registers. */
export type Profile = "demo" | "conformance";

/** `npm start`'s port: not one of the docker-compose stack's (Grafana 3000, nginx 8080, ...). */
export const DEFAULT_PORT = 8000;

export interface ServerConfig {
  port: number;
  host: string;
  /** `memory` unless REDIS_URL is set (then `redis`); `auto` probes REDIS_URL or localhost. */
  store: StoreMode;
  /** Why `store` has its value, for the startup log line. */
  storeReason: string;
  redisUrl: string | undefined;
  lockNodes: string[] | undefined;
  keyPrefix: string;
  /** Session TTL, seconds, slid by every request. */
  sessionTtl: number;
  shutdownTimeoutMs: number;
  maxBodyBytes: number;
  /** Time allowed to receive a request's headers and body, ms. */
  requestTimeoutMs: number;
  /** `null`: no Host check. Entries are host names (no port), lower case. */
  allowedHosts: string[] | null;
  /** `null`: no Origin check. Entries are origins (`scheme://host[:port]`), lower case. */
  allowedOrigins: string[] | null;
  /** Whether localhost origins (any port) are allowed in addition to `allowedOrigins`. */
  allowLocalOrigins: boolean;
  /** Largest session record (client info and capabilities) an initialize may store, bytes. */
  maxSessionRecordBytes: number;
  /** Bytes of session records this instance keeps live transports for (LRU beyond). */
  maxLocalSessionBytes: number;
  /** Initializes one client may send per `initRateWindowMs`; 0 turns the limit off. */
  initRateLimit: number;
  initRateWindowMs: number;
  /** Take the client address from X-Forwarded-For (behind a proxy you run). */
  trustProxy: boolean;
  /** `retry:` hint on SSE streams, ms: how long a client waits before it reconnects. */
  sseRetryMs: number;
  profile: Profile;
  /**
   * HMAC keys of multi round-trip request states (REQUEST_STATE_KEY, then the previous ones in
   * REQUEST_STATE_PREVIOUS_KEYS, comma-separated), 32 bytes or more each. Every instance needs
   * the same ones; unset, a random key per process (states then verify on this instance only).
   */
  requestStateKeys: { current: string; previous: string[] } | undefined;
  /** Start the OpenTelemetry SDK (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER is set). */
  telemetry: boolean;
  verbose: boolean;
}

/** A configuration error: the server prints it and exits with status 1. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

const LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]", "::1"];

/** Whether a bind address only accepts local connections. */
export function isLoopback(host: string): boolean {
  return LOCAL_HOSTS.includes(host.toLowerCase()) || /^127\./.test(host);
}

function integer(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function list(env: NodeJS.ProcessEnv, name: string): string[] | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return undefined;
  return raw
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name]?.trim().toLowerCase();
  return raw === "1" || raw === "true" || raw === "yes";
}

function isRedisUrl(value: string): boolean {
  return /^rediss?:\/\//.test(value);
}

/** Parses the environment; throws `ConfigError` naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const port = integer(env, "PORT", DEFAULT_PORT, 0, 65_535);
  const host = env.HOST?.trim() || "127.0.0.1";
  const redisUrl = env.REDIS_URL?.trim() || undefined;
  if (redisUrl !== undefined && !isRedisUrl(redisUrl)) {
    throw new ConfigError("REDIS_URL must start with redis:// or rediss://");
  }
  const rawStore = env.SESSION_STORE?.trim().toLowerCase() || undefined;
  if (
    rawStore !== undefined &&
    rawStore !== "memory" &&
    rawStore !== "redis" &&
    rawStore !== "auto"
  ) {
    throw new ConfigError(
      `SESSION_STORE must be memory, redis or auto, got "${env.SESSION_STORE}"`,
    );
  }
  let store: StoreMode;
  let storeReason: string;
  if (rawStore !== undefined) {
    store = rawStore;
    storeReason = `SESSION_STORE=${rawStore}`;
  } else if (redisUrl !== undefined) {
    store = "redis";
    storeReason = "REDIS_URL is set";
  } else {
    store = "memory";
    storeReason =
      "the default: REDIS_URL is not set (set REDIS_URL, or SESSION_STORE=auto to detect a local Redis)";
  }
  if (store === "redis" && redisUrl === undefined) {
    throw new ConfigError("SESSION_STORE=redis needs REDIS_URL");
  }
  const lockNodes = list(env, "LOCK_NODES");
  for (const node of lockNodes ?? []) {
    if (!isRedisUrl(node)) {
      throw new ConfigError("LOCK_NODES must be comma-separated redis:// or rediss:// URLs");
    }
  }
  const keyPrefix = env.KEY_PREFIX?.trim() || "mcp:session:";
  const profile = env.MCP_PROFILE?.trim().toLowerCase() || "demo";
  if (profile !== "demo" && profile !== "conformance") {
    throw new ConfigError(`MCP_PROFILE must be demo or conformance, got "${env.MCP_PROFILE}"`);
  }

  const hosts = list(env, "ALLOWED_HOSTS");
  const origins = list(env, "ALLOWED_ORIGINS");
  const local = isLoopback(host);
  let allowedHosts: string[] | null;
  if (hosts?.includes("*")) allowedHosts = null;
  else if (hosts !== undefined) allowedHosts = hosts.map((h) => h.toLowerCase());
  else allowedHosts = local ? [...LOCAL_HOSTS] : null;
  let allowedOrigins: string[] | null;
  if (origins?.includes("*")) allowedOrigins = null;
  else allowedOrigins = (origins ?? []).map((o) => o.toLowerCase().replace(/\/$/, ""));
  // Bound to localhost without a list: local pages may call the server, other sites may not.
  const allowLocalOrigins = allowedOrigins !== null && (origins === undefined ? local : false);
  if (allowedOrigins !== null && origins === undefined && !local) allowedOrigins = null;

  return {
    port,
    host,
    store,
    storeReason,
    redisUrl,
    lockNodes,
    keyPrefix,
    sessionTtl: integer(env, "SESSION_TTL", 3600, 1, 365 * 24 * 3600),
    shutdownTimeoutMs: integer(env, "SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
    maxBodyBytes: integer(env, "MAX_BODY_BYTES", 4 * 1024 * 1024, 1, 512 * 1024 * 1024),
    requestTimeoutMs: integer(env, "REQUEST_TIMEOUT_MS", 30_000, 1, 3_600_000),
    allowedHosts,
    allowedOrigins,
    allowLocalOrigins,
    sseRetryMs: integer(env, "SSE_RETRY_MS", 1000, 1, 600_000),
    maxSessionRecordBytes: integer(env, "MAX_SESSION_RECORD_BYTES", 16_384, 256, 1_048_576),
    maxLocalSessionBytes: integer(
      env,
      "MAX_LOCAL_SESSION_BYTES",
      32 * 1024 * 1024,
      1024,
      16 * 1024 * 1024 * 1024,
    ),
    initRateLimit: integer(env, "INIT_RATE_LIMIT", 30, 0, 1_000_000),
    initRateWindowMs: integer(env, "INIT_RATE_WINDOW_MS", 60_000, 100, 86_400_000),
    trustProxy: flag(env, "TRUST_PROXY"),
    profile,
    requestStateKeys: requestStateKeysOf(env),
    telemetry: Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_TRACES_EXPORTER),
    verbose: flag(env, "VERBOSE"),
  };
}

function requestStateKeysOf(env: NodeJS.ProcessEnv): ServerConfig["requestStateKeys"] {
  const current = env.REQUEST_STATE_KEY?.trim() || undefined;
  const previous = list(env, "REQUEST_STATE_PREVIOUS_KEYS") ?? [];
  if (current === undefined) {
    if (previous.length > 0) {
      throw new ConfigError("REQUEST_STATE_PREVIOUS_KEYS is set without REQUEST_STATE_KEY");
    }
    return undefined;
  }
  for (const [name, key] of [
    ["REQUEST_STATE_KEY", current],
    ...previous.map((k) => ["REQUEST_STATE_PREVIOUS_KEYS", k]),
  ]) {
    if (Buffer.byteLength(key as string) < 32) {
      throw new ConfigError(`${name}: a key must have at least 32 bytes`);
    }
  }
  return { current, previous };
}
