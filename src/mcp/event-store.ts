import type { Registry } from "prom-client";
import { checkId, hashId } from "../codec.js";
import { ErrorCode, SessionStoreError } from "../errors.js";
import { checkTtl } from "../options.js";
import {
  isValidId,
  type McpMetrics,
  mcpMetrics,
  type RedisAccess,
  redisCall,
  safely,
} from "./support.js";

/** A JSON-RPC message as the SDKs type it (`JSONRPCMessage`): stored and replayed as is. */
export type JSONRPCMessage = { jsonrpc: "2.0"; [field: string]: unknown };

/** The SDKs' `EventStore` interface (the same in v1 and v2), which `SessionEventStore` implements. */
export interface EventStoreLike {
  storeEvent(streamId: string, message: JSONRPCMessage): Promise<string>;
  getStreamIdForEventId?(eventId: string): Promise<string | undefined>;
  replayEventsAfter(
    lastEventId: string,
    options: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> },
  ): Promise<string>;
}

/** The SDK's stream of standalone (GET) notifications: the same name in every session. */
export const STANDALONE_STREAM_ID = "_GET_stream";

/** One stored event, as read back. */
export interface StoredEvent {
  /** The id the client sees (`Last-Event-ID`): `<streamId>:<session tag>:<ms>-<seq>`. */
  eventId: string;
  streamId: string;
  message: JSONRPCMessage;
}

/** Options of the event store. */
export interface McpEventStoreOptions {
  /** Seconds every event log lives after its last write. @default the store's `defaultTtl` (3600) */
  eventTtl?: number;
  /** Events kept per session (the oldest are trimmed). @default 1000 */
  maxEventsPerSession?: number;
  /**
   * Bytes of messages kept per session (stream ids and JSON; the oldest events are trimmed, the
   * newest is always kept). @default 1048576 (1 MiB)
   */
  maxEventBytesPerSession?: number;
  /** Where the event counters go. */
  registry?: Registry;
}

/** Raw entry: [sequence id, stream id, JSON]. */
type Entry = [xid: string, streamId: string, json: string];

/** @internal Storage of per-session event logs; ids minted by the backend, ordered. */
export interface EventLog {
  /** `wake`: what to publish on the session's push channel if an instance follows it. */
  append(sessionId: string, streamId: string, json: string, wake?: string): Promise<string>;
  /** Slides the expiry of a session's log, if it has one. */
  slide(sessionId: string): Promise<void>;
  /** The stream of event `xid`, or undefined if this session has no such event. */
  streamOf(sessionId: string, xid: string): Promise<string | undefined>;
  /** Up to `count` entries strictly after `xid`, oldest first. */
  after(sessionId: string, xid: string, count: number): Promise<Entry[]>;
  delete(sessionId: string): Promise<void>;
  close(): void;
}

const XID = /^\d{1,20}-\d{1,20}$/;
const TAG = /^[0-9a-f]{12}$/;
/** Stream ids share a key with the session id: at most 256 characters. */
const MAX_STREAM_ID = 256;
const PAGE = 256;
/**
 * The sequence id of every priming event: nothing is stored for it. A request stream's id is
 * new with each request, so "after 0-0" is exactly "from the stream's first message".
 */
const PRIMING_XID = "0-0";

/**
 * Splits `<streamId>:<tag>:<xid>`; undefined for anything else (ids come from clients). The tag
 * (a hash of the session id) matters: XADD ids are minted per key, so two sessions can hold the
 * same `<ms>-<seq>` on the same stream name (`_GET_stream`); the tag tells them apart.
 */
export function parseEventId(
  eventId: unknown,
): { streamId: string; tag: string; xid: string } | undefined {
  if (typeof eventId !== "string" || eventId.length > 340) return undefined;
  const at = eventId.lastIndexOf(":");
  const tagAt = at > 0 ? eventId.lastIndexOf(":", at - 1) : -1;
  if (tagAt <= 0) return undefined;
  const streamId = eventId.slice(0, tagAt);
  const tag = eventId.slice(tagAt + 1, at);
  const xid = eventId.slice(at + 1);
  if (!XID.test(xid) || !TAG.test(tag) || !isValidId(streamId, MAX_STREAM_ID)) return undefined;
  return { streamId, tag, xid };
}

function isResponse(message: unknown): boolean {
  return (
    typeof message === "object" &&
    message !== null &&
    "id" in message &&
    ("result" in message || "error" in message)
  );
}

/**
 * Event logs for resumable Streamable HTTP streams, one per MCP session (Redis: one stream key
 * `{prefix}{<sessionId>}:events`, ids minted by XADD; memory: the same shape in-process).
 *
 * The SDK's `EventStore` has no session parameter and names the standalone stream `_GET_stream`
 * in every session, so a shared store must be bound to a session: pass `forSession(id)` to the
 * transport of that session. A cursor (`Last-Event-ID`) from another session is unknown here.
 *
 * @example
 * const transport = new StreamableHTTPServerTransport({
 *   sessionIdGenerator: () => id,
 *   eventStore: services.eventStore.forSession(id),
 * });
 */
export class McpEventStore {
  readonly backend: "memory" | "redis";
  private readonly metrics: McpMetrics | undefined;
  /** Request streams with events written by this process and no response yet. */
  private readonly active = new Map<string, Set<string>>();

  /** @internal Use `registerRedisBackedServices`, or `createMcpEventStore`. */
  constructor(
    private readonly log: EventLog,
    backend: "memory" | "redis",
    registry: Registry | undefined,
  ) {
    this.backend = backend;
    this.metrics = registry === undefined ? undefined : mcpMetrics(registry);
  }

  /** The SDK `EventStore` of one session. */
  forSession(sessionId: string): SessionEventStore {
    checkId(sessionId);
    return new SessionEventStore(this, sessionId);
  }

  /** Drops a session's events (the handler calls it when the session is deleted). */
  async deleteSession(sessionId: string): Promise<void> {
    checkId(sessionId);
    this.active.delete(sessionId);
    await this.log.delete(sessionId);
  }

  /** @internal */
  async store(
    sessionId: string,
    tag: string,
    streamId: string,
    message: JSONRPCMessage,
    wake?: string,
  ): Promise<string> {
    if (!isValidId(streamId, MAX_STREAM_ID)) {
      throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "Invalid stream id");
    }
    const priming = streamId !== STANDALONE_STREAM_ID && Object.keys(message).length === 0;
    // A priming event is written nowhere: its id is the start of its (new) request stream.
    const xid = priming
      ? PRIMING_XID
      : await this.log.append(sessionId, streamId, JSON.stringify(message), wake);
    if (!priming) safely(() => this.metrics?.eventsStored.inc());
    if (streamId !== STANDALONE_STREAM_ID) {
      let streams = this.active.get(sessionId);
      if (isResponse(message)) {
        streams?.delete(streamId);
        if (streams?.size === 0) this.active.delete(sessionId);
      } else {
        if (streams === undefined) {
          streams = new Set();
          this.active.set(sessionId, streams);
        }
        streams.add(streamId);
      }
    }
    return `${streamId}:${tag}:${xid}`;
  }

  /**
   * @internal Slides the expiry of a session's event log with the session (the handler calls it
   * with each touch, in the same round trip), so an event's write leaves the expiry alone.
   */
  async slide(sessionId: string): Promise<void> {
    await this.log.slide(sessionId);
  }

  /** @internal True while this process is writing the stream (its request is running here). */
  isActiveHere(sessionId: string, streamId: string): boolean {
    return this.active.get(sessionId)?.has(streamId) ?? false;
  }

  /** @internal Forgets what this process was writing for a session (its transport closed). */
  forgetLocal(sessionId: string): void {
    this.active.delete(sessionId);
  }

  /** @internal The stream of an event of this session, or undefined. */
  async streamOf(sessionId: string, eventId: string): Promise<string | undefined> {
    const parsed = parseEventId(eventId);
    if (parsed === undefined || parsed.tag !== hashId(sessionId)) return undefined;
    if (parsed.xid === PRIMING_XID && parsed.streamId !== STANDALONE_STREAM_ID) {
      return parsed.streamId;
    }
    const streamId = await this.log.streamOf(sessionId, parsed.xid);
    return streamId === parsed.streamId ? streamId : undefined;
  }

  /**
   * @internal Events of the same stream after `eventId`, oldest first; priming events (empty
   * messages) are skipped. `undefined` when the cursor is not an event of this session.
   */
  async eventsAfter(sessionId: string, eventId: string): Promise<StoredEvent[] | undefined> {
    const parsed = parseEventId(eventId);
    if (parsed === undefined || parsed.tag !== hashId(sessionId)) return undefined;
    const tag = parsed.tag;
    const out: StoredEvent[] = [];
    let cursor = parsed.xid;
    for (;;) {
      const page = await this.log.after(sessionId, cursor, PAGE);
      for (const [xid, streamId, json] of page) {
        if (streamId !== parsed.streamId || json === "{}") continue;
        out.push({ eventId: `${streamId}:${tag}:${xid}`, streamId, message: JSON.parse(json) });
      }
      if (page.length < PAGE) break;
      cursor = (page[page.length - 1] as Entry)[0];
    }
    return out;
  }

  /** @internal */
  countReplayed(n: number): void {
    if (n > 0) safely(() => this.metrics?.eventsReplayed.inc(n));
  }

  /** @internal */
  close(): void {
    this.active.clear();
    this.log.close();
  }
}

/** The SDK `EventStore` of one session (see `McpEventStore.forSession`). */
export class SessionEventStore implements EventStoreLike {
  private muted = false;
  private readonly tag: string;

  /** @internal */
  constructor(
    private readonly parent: McpEventStore,
    readonly sessionId: string,
  ) {
    this.tag = hashId(sessionId);
  }

  /**
   * @internal While muted, events are acknowledged but not stored: used when a session is rebuilt
   * by replaying `initialize`, whose response nobody reads.
   */
  mute(muted: boolean): void {
    this.muted = muted;
  }

  /** @internal True while muted (nothing is stored, so nobody is woken). */
  get isMuted(): boolean {
    return this.muted;
  }

  /**
   * `wake` (internal): the wake-up to publish, with the event, on the session's push channel when
   * an instance follows the session (see `StreamPush`).
   */
  async storeEvent(streamId: string, message: JSONRPCMessage, wake?: string): Promise<string> {
    if (this.muted) return `${streamId}:${this.tag}:0-0`;
    return this.parent.store(this.sessionId, this.tag, streamId, message, wake);
  }

  async getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    return this.parent.streamOf(this.sessionId, eventId);
  }

  async replayEventsAfter(
    lastEventId: string,
    { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> },
  ): Promise<string> {
    const parsed = parseEventId(lastEventId);
    const events = await this.parent.eventsAfter(this.sessionId, lastEventId);
    if (parsed === undefined || events === undefined) {
      throw new SessionStoreError(ErrorCode.INVALID_ARGUMENT, "Unknown event id");
    }
    for (const event of events) await send(event.eventId, event.message);
    this.parent.countReplayed(events.length);
    return parsed.streamId;
  }
}

// ------------------------------------------------------------------------------------------------
// Backends

/**
 * Appends one event. KEYS[1] the session's stream, KEYS[2] its followed mark (`StreamPush`);
 * ARGV maxEvents, maxBytes, ttlMs, streamId, json, push channel ('' for no wake), wake, '1' when
 * the channel is sharded (Cluster). Returns the entry id. The wake is published only while an
 * instance follows the session (the mark exists), after the XADD in the same script: a follower
 * sets its mark before it reads the log, so it either reads the event or is woken for it. Each entry carries `b`, the bytes (stream id + JSON) written to the
 * stream up to and including it, so the bytes held are `b` of the newest minus the start of the
 * oldest (its `b` less its own size), read without a scan. A stream is only ever created with its
 * expiry (the PEXPIRE below); later events leave the expiry alone: the handler slides it with the
 * session's. Past the byte budget, the oldest entries are trimmed (XTRIM MINID) down to the
 * first that starts within the budget; the newest is always kept. Redis calls per event:
 * XREVRANGE, XADD, and, while under the budget since the stream was created, nothing else.
 */
export const APPEND_SCRIPT = `
local function sizes(e)
  local f = e[2]
  local b, n = 0, 0
  for i = 1, #f, 2 do
    if f[i] == 'b' then b = tonumber(f[i + 1]) or 0 else n = n + #f[i + 1] end
  end
  return b, n
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local total = #ARGV[4] + #ARGV[5]
if last then total = total + sizes(last) end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[1], '*',
  's', ARGV[4], 'm', ARGV[5], 'b', total)
if not last then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call(ARGV[8] == '1' and 'SPUBLISH' or 'PUBLISH', ARGV[6], ARGV[7])
end
local floor = total - tonumber(ARGV[2])
if floor > 0 then
  local from = '-'
  local keep = id
  local first
  repeat
    local page = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 16)
    local found = false
    for _, e in ipairs(page) do
      first = first or e[1]
      local b, n = sizes(e)
      if b - n >= floor or e[1] == id then
        keep = e[1]
        found = true
        break
      end
      from = '(' .. e[1]
    end
  until found or #page < 16
  if keep ~= first then redis.call('XTRIM', KEYS[1], 'MINID', keep) end
end
return id
`;

type AppendClient = RedisAccess["client"] & {
  mssEventAppend(
    key: string,
    mark: string,
    maxEvents: number,
    maxBytes: number,
    ttlMs: number,
    streamId: string,
    json: string,
    channel: string,
    wake: string,
    sharded: string,
  ): Promise<string>;
};

/**
 * Redis: one stream per session, XADD ids, a cap in entries (MAXLEN) and in bytes, one script
 * per event (`APPEND_SCRIPT`). The stream's expiry is set when it is created and slides with the
 * session (`slide`, sent with the handler's touch).
 */
export class RedisEventLog implements EventLog {
  private readonly sharded: string;

  constructor(
    private readonly redis: RedisAccess,
    private readonly ttlMs: number,
    private readonly maxEvents: number,
    private readonly maxBytes: number,
  ) {
    const defined = (redis.client as unknown as { mssEventAppend?: unknown }).mssEventAppend;
    if (typeof defined !== "function") {
      redis.client.defineCommand("mssEventAppend", { numberOfKeys: 2, lua: APPEND_SCRIPT });
    }
    const client = redis.client;
    this.sharded = "nodes" in client && typeof client.nodes === "function" ? "1" : "0";
  }

  async append(sessionId: string, streamId: string, json: string, wake?: string): Promise<string> {
    const key = this.redis.key(sessionId, "events");
    // The same names as StreamPush's (push.ts): the session's hash tag, so one slot.
    const mark = this.redis.key(sessionId, "followed");
    const channel = wake === undefined ? "" : this.redis.key(sessionId, "push");
    const client = this.redis.client as AppendClient;
    const xid = await redisCall(this.redis, "XADD", () =>
      client.mssEventAppend(
        key,
        mark,
        this.maxEvents,
        this.maxBytes,
        this.ttlMs,
        streamId,
        json,
        channel,
        wake ?? "",
        this.sharded,
      ),
    );
    if (typeof xid !== "string") {
      throw new SessionStoreError(ErrorCode.BACKEND_UNAVAILABLE, "Redis XADD failed");
    }
    return xid;
  }

  async slide(sessionId: string): Promise<void> {
    const key = this.redis.key(sessionId, "events");
    await redisCall(this.redis, "PEXPIRE", () => this.redis.client.pexpire(key, this.ttlMs));
  }

  async streamOf(sessionId: string, xid: string): Promise<string | undefined> {
    const key = this.redis.key(sessionId, "events");
    const rows = await redisCall(this.redis, "XRANGE", () =>
      this.redis.client.xrange(key, xid, xid, "COUNT", 1),
    );
    const row = rows[0];
    return row === undefined ? undefined : field(row[1], "s");
  }

  async after(sessionId: string, xid: string, count: number): Promise<Entry[]> {
    const key = this.redis.key(sessionId, "events");
    const rows = await redisCall(this.redis, "XRANGE", () =>
      this.redis.client.xrange(key, `(${xid}`, "+", "COUNT", count),
    );
    return rows.map(([id, fields]) => [id, field(fields, "s") ?? "", field(fields, "m") ?? "{}"]);
  }

  async delete(sessionId: string): Promise<void> {
    const key = this.redis.key(sessionId, "events");
    await redisCall(this.redis, "DEL", () => this.redis.client.del(key));
  }

  close(): void {}
}

function field(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === name) return fields[i + 1];
  }
  return undefined;
}

interface MemoryLog {
  entries: Array<{ ms: number; seq: number; streamId: string; json: string; size: number }>;
  /** Sum of the entries' sizes (UTF-8 bytes of stream id and JSON, as Redis counts them). */
  bytes: number;
  expiresAt: number;
}

/** Memory: the same ids (`<ms>-<seq>`), cap (exact) and TTL as Redis, swept lazily. */
export class MemoryEventLog implements EventLog {
  private readonly logs = new Map<string, MemoryLog>();
  private writes = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEvents: number,
    private readonly maxBytes: number,
  ) {}

  private live(sessionId: string, now = Date.now()): MemoryLog | undefined {
    const log = this.logs.get(sessionId);
    if (log !== undefined && log.expiresAt <= now) {
      this.logs.delete(sessionId);
      return undefined;
    }
    return log;
  }

  async append(sessionId: string, streamId: string, json: string): Promise<string> {
    const now = Date.now();
    if (++this.writes % 1024 === 0) this.sweep(now);
    let log = this.live(sessionId, now);
    if (log === undefined) {
      log = { entries: [], bytes: 0, expiresAt: 0 };
      this.logs.set(sessionId, log);
    }
    const last = log.entries[log.entries.length - 1];
    // Same rule as XADD *: never go backwards, bump the sequence within one millisecond.
    const ms = last === undefined ? now : Math.max(now, last.ms);
    const seq = last !== undefined && last.ms === ms ? last.seq + 1 : 0;
    const size = Buffer.byteLength(streamId) + Buffer.byteLength(json);
    log.entries.push({ ms, seq, streamId, json, size });
    log.bytes += size;
    // Same caps as Redis: entries, then bytes (the newest always kept).
    let drop = Math.max(0, log.entries.length - this.maxEvents);
    let bytes = log.bytes;
    for (let i = 0; i < drop; i++) bytes -= (log.entries[i] as MemoryLog["entries"][number]).size;
    while (bytes > this.maxBytes && drop < log.entries.length - 1) {
      bytes -= (log.entries[drop] as MemoryLog["entries"][number]).size;
      drop++;
    }
    if (drop > 0) log.entries.splice(0, drop);
    log.bytes = bytes;
    log.expiresAt = now + this.ttlMs;
    return `${ms}-${seq}`;
  }

  async slide(sessionId: string): Promise<void> {
    const log = this.live(sessionId);
    if (log !== undefined) log.expiresAt = Date.now() + this.ttlMs;
  }

  private index(log: MemoryLog, xid: string): { at: number; exact: boolean } {
    const [msText, seqText] = xid.split("-");
    const ms = Number(msText);
    const seq = Number(seqText);
    let lo = 0;
    let hi = log.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = log.entries[mid] as MemoryLog["entries"][number];
      if (e.ms < ms || (e.ms === ms && e.seq < seq)) lo = mid + 1;
      else hi = mid;
    }
    const e = log.entries[lo];
    return { at: lo, exact: e !== undefined && e.ms === ms && e.seq === seq };
  }

  async streamOf(sessionId: string, xid: string): Promise<string | undefined> {
    const log = this.live(sessionId);
    if (log === undefined) return undefined;
    const { at, exact } = this.index(log, xid);
    return exact ? log.entries[at]?.streamId : undefined;
  }

  async after(sessionId: string, xid: string, count: number): Promise<Entry[]> {
    const log = this.live(sessionId);
    if (log === undefined) return [];
    const { at, exact } = this.index(log, xid);
    const start = exact ? at + 1 : at;
    return log.entries
      .slice(start, start + count)
      .map((e) => [`${e.ms}-${e.seq}`, e.streamId, e.json] as Entry);
  }

  async delete(sessionId: string): Promise<void> {
    this.logs.delete(sessionId);
  }

  private sweep(now: number): void {
    for (const [id, log] of this.logs) if (log.expiresAt <= now) this.logs.delete(id);
  }

  close(): void {
    this.logs.clear();
  }
}

/** Builds an event store on Redis (when `redis` is given) or in memory. */
export function createMcpEventStore(
  redis: RedisAccess | undefined,
  options: McpEventStoreOptions & { defaultTtl?: number } = {},
): McpEventStore {
  const ttl = checkTtl(options.eventTtl ?? options.defaultTtl ?? 3600, "eventTtl");
  const max = options.maxEventsPerSession ?? 1000;
  if (!Number.isInteger(max) || max < 1) {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      `Invalid option "maxEventsPerSession": expected an integer >= 1, got ${String(max)}`,
      { details: { option: "maxEventsPerSession" } },
    );
  }
  const bytes = options.maxEventBytesPerSession ?? 1_048_576;
  if (!Number.isInteger(bytes) || bytes < 1) {
    throw new SessionStoreError(
      ErrorCode.INVALID_ARGUMENT,
      `Invalid option "maxEventBytesPerSession": expected an integer >= 1, got ${String(bytes)}`,
      { details: { option: "maxEventBytesPerSession" } },
    );
  }
  const ttlMs = Math.ceil(ttl * 1000);
  return redis === undefined
    ? new McpEventStore(new MemoryEventLog(ttlMs, max, bytes), "memory", options.registry)
    : new McpEventStore(new RedisEventLog(redis, ttlMs, max, bytes), "redis", options.registry);
}
