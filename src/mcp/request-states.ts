import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Counter, Registry } from "prom-client";
import { ErrorCode, SessionStoreError } from "../errors.js";
import type { Logger } from "../types.js";
import { counter, luaScript, type RedisAccess, redisCall, runScript, safely } from "./support.js";

/** Why a request state was refused: the `outcome` label of the consumption counter too. */
export type RequestStateRefusal = "invalid" | "expired" | "replay";

/** An HMAC key: at least 32 bytes (a string counts its UTF-8 bytes). */
export type RequestStateKey = string | Uint8Array;

/** Options of {@link createRequestStates}. */
export interface RequestStatesOptions {
  /** The Redis behind the session store (`redisAccessOf(store)`); `undefined` keeps state in memory. */
  redis: RedisAccess | undefined;
  /** Key prefix; states live under `<prefix>rs:{<id>}`. */
  prefix: string;
  /** Where the consumption counter is registered (reused when already there). */
  registry: Registry;
  logger: Logger;
  /**
   * HMAC keys from configuration, never from Redis: states are minted under `current` and
   * verified under `current` then each of `previous`, so a key can be rotated without refusing
   * the states in flight.
   */
  keys: { current: RequestStateKey; previous?: readonly RequestStateKey[] };
  /** Seconds a minted state stays valid. @default 600 */
  ttl?: number;
  /** Keep payloads in the store and hand the client only an id and a MAC. @default false */
  byReference?: boolean;
  /** Largest payload in bytes (JSON). @default 65536 */
  maxPayloadBytes?: number;
}

/** What {@link RequestStates.mint} accepts besides the payload. */
export interface MintOptions {
  /** A value the state is bound to (principal, method): consuming it under another value fails. */
  bind?: string;
  /** Overrides the `ttl` option for this state, in seconds. */
  ttl?: number;
  /** Overrides the `byReference` option for this state. */
  byReference?: boolean;
}

/** Multi round-trip request states: signed, consumed at most once across every instance. */
export interface RequestStates {
  /** Seals `payload` into the opaque string a handler returns as `requestState`. */
  mint<T>(payload: T, options?: MintOptions): Promise<string>;
  /**
   * Verifies `state` and marks it consumed, on every instance at once; returns the payload.
   * Throws `ERR_INVALID_ARGUMENT` with `details.reason` a {@link RequestStateRefusal}.
   */
  consume<T = unknown>(state: string, options?: { bind?: string }): Promise<T>;
  close(): Promise<void>;
}

const DEFAULTS = Object.freeze({ ttl: 600, byReference: false, maxPayloadBytes: 65_536 });
const VERSION = "rs1";
/** Inline: rs1.i.<id>.<exp>.<payload>.<mac>; by reference: rs1.r.<id>.<exp>..<mac> */
const WIRE =
  /^rs1\.([ir])\.([A-Za-z0-9_-]{22})\.([0-9]{1,15})\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]{43})$/;
const MAX_WIRE_CHARS = 200_000;
/** The consumed marker outlives the state's expiry a little, so clock skew cannot reopen it. */
const MARKER_GRACE_MS = 5_000;

// Reads and deletes in one step, so two instances cannot both take a by-reference payload.
const TAKE = luaScript(
  "mssRequestStateTake",
  1,
  `
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
`,
);

const CONSUMED = "\u0000consumed";

interface Parsed {
  mode: "i" | "r";
  id: string;
  exp: number;
  body: string;
  mac: Buffer;
}

/**
 * Request states for multi round-trip requests (`input_required` / `requestState`): HMAC-signed,
 * optionally kept by reference in Redis, consumed at most once across instances, verified
 * under the current and the previous keys.
 *
 * @example
 * const states = createRequestStates({ redis: redisAccessOf(store), prefix: "mcp:",
 *   registry, logger: console, keys: { current: process.env.STATE_KEY!, previous: [oldKey] } });
 * const wire = await states.mint({ step: 2 }, { bind: principal });
 * const { step } = await states.consume<{ step: number }>(wire, { bind: principal });
 */
export function createRequestStates(options: RequestStatesOptions): RequestStates {
  const settings = resolve(options);
  const consumed = consumedCounter(options.registry);
  const backend = options.redis ? redisBackend(options.redis, options.prefix) : memoryBackend();
  let closed = false;

  const refuse = (reason: RequestStateRefusal): never => {
    safely(() => consumed.inc({ outcome: reason }));
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      `Invalid or expired requestState (${reason})`,
      { details: { reason } },
    );
  };
  const open = () => {
    if (closed) throw new SessionStoreError(ErrorCode.STORE_CLOSED, "Request states are closed");
  };

  return {
    async mint(payload, mintOptions = {}) {
      open();
      const ttl = mintOptions.ttl === undefined ? settings.ttl : seconds(mintOptions.ttl, "ttl");
      const byRef = mintOptions.byReference ?? settings.byReference;
      const json = encodePayload(payload, settings.maxPayloadBytes);
      const id = randomBytes(16).toString("base64url");
      const expMs = Date.now() + ttl * 1000;
      const exp = String(Math.ceil(expMs / 1000));
      const body = byRef ? "" : Buffer.from(json).toString("base64url");
      if (byRef) await backend.put(id, json, expMs);
      const mode = byRef ? "r" : "i";
      const mac = sign(settings.keys[0] as Buffer, mode, id, exp, body, mintOptions.bind);
      return `${VERSION}.${mode}.${id}.${exp}.${body}.${mac.toString("base64url")}`;
    },

    async consume<T>(state: string, consumeOptions: { bind?: string } = {}): Promise<T> {
      open();
      const parsed = parse(state) ?? refuse("invalid");
      const { mode, id, exp, body, mac } = parsed;
      const valid = settings.keys.some((key) =>
        timingSafeEqual(sign(key, mode, id, String(exp), body, consumeOptions.bind), mac),
      );
      if (!valid) return refuse("invalid");
      const expMs = exp * 1000;
      if (Date.now() >= expMs) return refuse("expired");
      const json = await spend(backend, parsed, expMs).catch((err: unknown) => {
        // The SDK answers a refused state without its reason: an outage must show somewhere.
        options.logger.warn(`requestState not checked: ${(err as Error).message}`);
        throw err;
      });
      if (json === null) return refuse("replay");
      safely(() => consumed.inc({ outcome: "ok" }));
      return JSON.parse(json) as T;
    },

    async close() {
      closed = true;
      backend.close();
    },
  };
}

/** Marks the state consumed (or takes its stored payload); `null` if it was consumed already. */
async function spend(backend: Backend, state: Parsed, expMs: number): Promise<string | null> {
  if (state.mode === "r") return backend.take(state.id);
  if (!(await backend.mark(state.id, expMs + MARKER_GRACE_MS))) return null;
  return Buffer.from(state.body, "base64url").toString("utf8");
}

interface Settings {
  keys: Buffer[];
  ttl: number;
  byReference: boolean;
  maxPayloadBytes: number;
}

function resolve(options: RequestStatesOptions): Settings {
  if (typeof options?.prefix !== "string") {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      "requestStates: prefix must be a string",
    );
  }
  const previous = options.keys?.previous ?? [];
  if (!Array.isArray(previous)) {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      "requestStates: keys.previous must be an array",
    );
  }
  const keys = [options.keys?.current, ...previous].map((key, i) =>
    keyBytes(key, i === 0 ? "keys.current" : `keys.previous[${i - 1}]`),
  );
  return {
    keys,
    ttl: options.ttl === undefined ? DEFAULTS.ttl : seconds(options.ttl, "ttl"),
    byReference: options.byReference ?? DEFAULTS.byReference,
    maxPayloadBytes: options.maxPayloadBytes ?? DEFAULTS.maxPayloadBytes,
  };
}

function keyBytes(key: unknown, field: string): Buffer {
  const bytes =
    typeof key === "string"
      ? Buffer.from(key, "utf8")
      : key instanceof Uint8Array
        ? Buffer.from(key)
        : undefined;
  // The SDK's codec asks the same: an HMAC-SHA256 key shorter than its output weakens it.
  if (bytes === undefined || bytes.length < 32) {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      `requestStates: ${field} must be a string or Uint8Array of at least 32 bytes`,
    );
  }
  return bytes;
}

function seconds(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      `requestStates: ${field} must be a positive number of seconds`,
    );
  }
  return value;
}

function encodePayload(payload: unknown, maxBytes: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (cause) {
    throw new SessionStoreError(
      ErrorCode.SERIALIZATION,
      "requestStates: payload is not JSON-serializable",
      { cause },
    );
  }
  if (json === undefined) {
    throw new SessionStoreError(
      ErrorCode.SERIALIZATION,
      "requestStates: payload is not JSON-serializable",
    );
  }
  if (Buffer.byteLength(json) > maxBytes) {
    throw new SessionStoreError(
      ErrorCode.PAYLOAD_TOO_LARGE,
      `requestStates: payload larger than ${maxBytes} bytes`,
    );
  }
  return json;
}

function sign(
  key: Buffer,
  mode: string,
  id: string,
  exp: string,
  body: string,
  bind?: string,
): Buffer {
  // NUL separators and the version keep fields from sliding into each other; the bind value is
  // only hashed, never sent to the client.
  return createHmac("sha256", key)
    .update(
      `${VERSION}\0${mode}\0${id}\0${exp}\0${body}\0${bind === undefined ? "-" : `b:${bind}`}`,
    )
    .digest();
}

function parse(state: unknown): Parsed | undefined {
  if (typeof state !== "string" || state.length > MAX_WIRE_CHARS) return undefined;
  const match = WIRE.exec(state);
  if (match === null) return undefined;
  const [, mode, id, exp, body, mac] = match as unknown as [
    string,
    "i" | "r",
    string,
    string,
    string,
    string,
  ];
  if ((mode === "r") !== (body === "")) return undefined;
  const macBytes = Buffer.from(mac, "base64url");
  // base64url leaves spare bits in the last character: only the canonical spelling is accepted.
  if (macBytes.toString("base64url") !== mac) return undefined;
  return { mode, id, exp: Number(exp), body, mac: macBytes };
}

function consumedCounter(registry: Registry): Counter<"outcome"> {
  return counter(
    registry,
    "mcp_session_store_request_state_consumed_total",
    "Request states presented for consumption, by outcome (ok, replay, invalid, expired).",
    ["outcome"] as const,
  );
}

// ------------------------------------------------------------------------------------------------
// Backends: where consumed markers and by-reference payloads live.

interface Backend {
  /** Stores a by-reference payload until `expiresAt` (epoch ms). */
  put(id: string, json: string, expiresAt: number): Promise<void>;
  /** Takes a by-reference payload once; `null` if taken already or never stored. */
  take(id: string): Promise<string | null>;
  /** Marks an inline state consumed until `expiresAt`; false if it was already. */
  mark(id: string, expiresAt: number): Promise<boolean>;
  close(): void;
}

function redisBackend(access: RedisAccess, prefix: string): Backend {
  const key = (id: string) => `${prefix}rs:{${id}}`;
  const pttl = (expiresAt: number) => Math.max(1, expiresAt - Date.now());
  return {
    async put(id, json, expiresAt) {
      await redisCall(access, "SET request state", () =>
        access.client.set(key(id), json, "PX", pttl(expiresAt)),
      );
    },
    async take(id) {
      const value = await redisCall(access, "take request state", () =>
        runScript(access.client, TAKE, [key(id)], []),
      );
      return typeof value === "string" ? value : null;
    },
    async mark(id, expiresAt) {
      const reply = await redisCall(access, "mark request state consumed", () =>
        access.client.set(key(id), "1", "PX", pttl(expiresAt), "NX"),
      );
      return reply === "OK";
    },
    close() {},
  };
}

function memoryBackend(): Backend {
  const entries = new Map<string, { value: string; expiresAt: number }>();
  let nextSweep = 0;
  // Expired entries go in a sweep at most once a second: no timer to leak, bounded work.
  const sweep = (now: number) => {
    if (now < nextSweep) return;
    nextSweep = now + 1000;
    for (const [id, entry] of entries) if (entry.expiresAt <= now) entries.delete(id);
  };
  const live = (id: string, now: number) => {
    const entry = entries.get(id);
    return entry !== undefined && entry.expiresAt > now ? entry : undefined;
  };
  return {
    async put(id, json, expiresAt) {
      sweep(Date.now());
      entries.set(id, { value: json, expiresAt });
    },
    async take(id) {
      const now = Date.now();
      sweep(now);
      const entry = live(id, now);
      if (entry === undefined || entry.value === CONSUMED) return null;
      entries.delete(id);
      return entry.value;
    },
    async mark(id, expiresAt) {
      const now = Date.now();
      sweep(now);
      if (live(id, now) !== undefined) return false;
      entries.set(id, { value: CONSUMED, expiresAt });
      return true;
    },
    close() {
      entries.clear();
    },
  };
}
