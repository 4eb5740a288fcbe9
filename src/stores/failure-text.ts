import { printable } from "../codec.js";

/** A Redis failure in words: what happened (with its code) and what the user can do about it. */
export interface FailureText {
  cause: string;
  hint: string;
}

/*
 * ioredis reports the real cause (ECONNREFUSED, WRONGPASS, a TLS error) on the client's `error`
 * event, then rejects commands with consequences of it: "Connection is closed.", "Stream isn't
 * writeable and enableOfflineQueue options is false", "Reached the max retries per request limit".
 * Those say nothing to a user, so they give way to the last connection error when there is one.
 */
const CONSEQUENCE =
  /Connection is closed|Stream isn't writeable|max retries per request|connection ended|None of startup nodes is available|Failed to refresh slots cache|All sentinels are unreachable/i;

const RULES: Array<{ test: RegExp; text: (code: string, message: string) => FailureText }> = [
  {
    test: /WRONGPASS|NOAUTH|invalid (username-)?password|Authentication required|AUTH failed|NOPERM/i,
    text: (_code, message) => ({
      cause: `authentication failed (${/WRONGPASS|NOAUTH|NOPERM/.exec(message)?.[0] ?? "AUTH"})`,
      hint: "check the user and password of the URL (or the ACL of that user)",
    }),
  },
  {
    test: /ECONNREFUSED/,
    text: () => ({
      cause: "connection refused (ECONNREFUSED)",
      hint: "start Redis there, or set redisUrl (REDIS_URL) to a Redis that runs",
    }),
  },
  {
    test: /ENOTFOUND|EAI_AGAIN/,
    text: (code) => ({
      cause: `host not found (${code || "ENOTFOUND"})`,
      hint: "check the host name of the URL",
    }),
  },
  {
    test: /CERT|TLS|SSL|self[- ]signed|EPROTO/i,
    text: (code) => ({
      cause: `TLS handshake failed (${code || "TLS"})`,
      hint: "check rediss:// and the certificates (ioredis `tls` options through the redis option)",
    }),
  },
  {
    test: /ETIMEDOUT|timed? ?out|no answer within/i,
    text: (_code, message) => ({
      cause: /no answer within \d+ ms/.exec(message)?.[0] ?? "no answer in time (ETIMEDOUT)",
      hint: "check that Redis runs at that address and is not overloaded; the timeouts are connectTimeout and commandTimeout",
    }),
  },
  {
    test: /ECONNRESET|EPIPE|EHOSTUNREACH|ENETUNREACH|ECONNABORTED/,
    text: (code) => ({
      cause: `connection lost (${code})`,
      hint: "check that Redis runs and is reachable from here",
    }),
  },
];

/** The errors of `err`'s cause chain (and an AggregateError's errors), innermost first. */
function causes(err: unknown, out: Array<{ code: string; message: string }> = [], depth = 0) {
  if (depth > 8 || err === null || err === undefined) return out;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof err === "object") {
    causes(e.cause, out, depth + 1);
    if (Array.isArray(e.errors)) for (const inner of e.errors) causes(inner, out, depth + 1);
  }
  out.push({
    code: typeof e.code === "string" ? e.code : "",
    message: typeof e.message === "string" ? e.message : String(err),
  });
  return out;
}

function match(err: unknown): FailureText | undefined {
  for (const { code, message } of causes(err)) {
    const text = `${code} ${message}`;
    for (const rule of RULES) {
      if (rule.test.test(text)) {
        const named = /\b(E[A-Z]{3,}|ERR_[A-Z_]+|[A-Z_]*CERT[A-Z_]*)\b/.exec(text)?.[1] ?? code;
        return rule.text(named, message);
      }
    }
  }
  return undefined;
}

/**
 * What went wrong with Redis, from the error a call got and the last error the connection
 * reported (`lastConnectionError`), whichever names the cause.
 */
export function describeFailure(err: unknown, lastConnectionError?: unknown): FailureText {
  const direct = match(err);
  if (direct !== undefined) return direct;
  const message = (err as { message?: unknown } | undefined)?.message;
  const text = typeof message === "string" ? message : String(err);
  if (CONSEQUENCE.test(text)) {
    const earlier = lastConnectionError === undefined ? undefined : match(lastConnectionError);
    return (
      earlier ?? {
        cause: "not connected",
        hint: "check that Redis runs at that address; the store reconnects by itself",
      }
    );
  }
  return { cause: printable(text, 200), hint: "check that Redis runs at that address" };
}
