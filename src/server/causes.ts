/**
 * One line that names the real cause of a Redis failure: what failed, where (redacted URL) and
 * what to do. ioredis reports the cause (ECONNREFUSED, WRONGPASS, ...) on its `error` event and
 * then rejects commands with generic messages ("Connection is closed.", "Stream isn't
 * writeable..."), so the server keeps the last connection error it saw and explains that.
 */
import { Redis } from "ioredis";
import { printable } from "../codec.js";
import { redactUrl } from "../options.js";

interface Cause {
  code: string;
  message: string;
}

/** The errors in `err`'s `cause` chain (and an AggregateError's `errors`), outermost first. */
function chain(err: unknown, out: Cause[] = [], depth = 0): Cause[] {
  if (depth > 8 || err === null || err === undefined) return out;
  if (typeof err !== "object") {
    out.push({ code: "", message: String(err) });
    return out;
  }
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  out.push({
    code: typeof e.code === "string" ? e.code : "",
    message: typeof e.message === "string" ? e.message : String(err),
  });
  if (Array.isArray(e.errors)) for (const inner of e.errors) chain(inner, out, depth + 1);
  chain(e.cause, out, depth + 1);
  return out;
}

const RULES: Array<{ test: RegExp; say: (where: string, code: string) => string }> = [
  {
    test: /WRONGPASS|NOAUTH|invalid (username-)?password|Authentication required|AUTH failed/i,
    say: (where) =>
      `Redis at ${where} refused the credentials (authentication failed): check the user and password in REDIS_URL`,
  },
  {
    test: /ECONNREFUSED/,
    say: (where) =>
      `Redis at ${where} refused the connection (ECONNREFUSED): start Redis there, or leave REDIS_URL unset to use the memory store`,
  },
  {
    test: /ENOTFOUND|EAI_AGAIN/,
    say: (where, code) =>
      `the host of ${where} does not resolve (${code || "ENOTFOUND"}): check the host name in REDIS_URL`,
  },
  {
    test: /CERT|TLS|SSL|self[- ]signed/i,
    say: (where, code) =>
      `the TLS handshake with ${where} failed (${code || "TLS"}): check rediss:// and the certificates`,
  },
  {
    test: /ETIMEDOUT|timed? ?out|no answer within/i,
    say: (where) =>
      `Redis at ${where} did not answer in time: check the address, the network and the load on Redis`,
  },
  {
    test: /ECONNRESET|EPIPE|EHOSTUNREACH|ENETUNREACH/,
    say: (where, code) =>
      `the connection to Redis at ${where} failed (${code}): check that Redis runs and is reachable`,
  },
];

/** What failed and what to do, in one line, from an error (its causes included). */
export function explainRedisFailure(err: unknown, url: string): string {
  const where = redactUrl(url);
  const causes = chain(err);
  // A configuration mistake is not Redis' fault: its own message says what to fix.
  if (causes[0]?.code === "ERR_INVALID_ARGUMENT") return printable(causes[0].message, 300);
  // The innermost cause is the most specific one.
  for (const cause of [...causes].reverse()) {
    const text = `${cause.code} ${cause.message}`;
    for (const rule of RULES) {
      if (rule.test.test(text)) {
        const code = /\b(E[A-Z]+|ERR_[A-Z_]+|[A-Z_]*CERT[A-Z_]*)\b/.exec(text)?.[1] ?? cause.code;
        return rule.say(where, code);
      }
    }
  }
  const first = causes[0]?.message ?? "unknown error";
  return `Redis at ${where} is unavailable (${printable(first, 300)}): check that Redis runs and REDIS_URL is right`;
}

/**
 * Connects once to `url` and resolves with the first error ioredis reports, or `undefined` when
 * Redis answers PING. Used after a failed start, to explain it.
 */
export async function probeRedis(url: string, timeoutMs = 1000): Promise<unknown> {
  const client = new Redis(url, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: timeoutMs,
  });
  let first: unknown;
  client.on("error", (err: unknown) => {
    first ??= err;
  });
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (err) {
    return first ?? err;
  } finally {
    client.disconnect();
  }
}

/** Remembers the last connection error of a client, for /readyz. */
export class RedisErrorWatch {
  private last: { err: unknown; at: number } | undefined;

  /** `client` is any ioredis client (or Cluster); `ready` clears the remembered error. */
  constructor(client: { on(event: string, listener: (arg?: unknown) => void): unknown }) {
    client.on("error", (err) => {
      this.last = { err, at: Date.now() };
    });
    client.on("ready", () => {
      this.last = undefined;
    });
  }

  /** The last error seen within `withinMs`, if any. */
  recent(withinMs = 60_000): unknown {
    return this.last !== undefined && Date.now() - this.last.at <= withinMs
      ? this.last.err
      : undefined;
  }
}
