import { createHash } from "node:crypto";
import { ErrorCode, SessionStoreError } from "./errors.js";

const ID_PATTERN = /^[\x21-\x7e]{1,512}$/;
/** Deeper values are refused: it bounds the walk and turns a cycle into a clear error. */
const MAX_DEPTH = 256;

/** A short, stable hash of a session id: what logs, errors and spans show instead of the id. */
export function hashId(id: string): string {
  return createHash("sha256").update(id).digest("hex").slice(0, 12);
}

/** Throws `ERR_INVALID_SESSION_ID` unless `id` is 1..512 visible ASCII characters. */
export function checkId(id: unknown): string {
  if (typeof id !== "string" || !ID_PATTERN.test(id)) {
    const shown =
      typeof id === "string"
        ? `a string of ${id.length} characters (hash ${hashId(id)})`
        : `a ${typeof id}`;
    throw new SessionStoreError(
      ErrorCode.INVALID_SESSION_ID,
      `Invalid session id: expected 1..512 visible ASCII characters (0x21-0x7E), got ${shown}`,
    );
  }
  return id;
}

/** Longest path shown in an `ERR_SERIALIZATION` message (keys come from callers' data). */
const MAX_PATH_CHARS = 200;

/**
 * `text` made safe for a log line or an error message: control characters (C0, DEL, C1, the
 * Unicode line and paragraph separators) escaped as `\n`, `\xHH` or `\uHHHH`, and at most
 * `maxChars` characters kept, the rest counted. Anything that came from a request goes through
 * it before it reaches a message, so nobody can forge log lines or write megabyte lines.
 */
export function printable(text: string, maxChars = 200): string {
  const cut = text.length > maxChars ? text.slice(0, maxChars) : text;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  const safe = cut.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, escapeControl);
  return cut === text ? safe : `${safe}... (${text.length - maxChars} more characters)`;
}

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeControl(c: string): string {
  const code = c.charCodeAt(0);
  return (
    NAMED[c] ??
    (code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`)
  );
}

function refuse(path: string, what: string): never {
  const shown = printable(path, MAX_PATH_CHARS);
  throw new SessionStoreError(
    ErrorCode.SERIALIZATION,
    `Session data is not JSON: ${what} at ${shown || "the top level"}`,
    { details: { path: shown } },
  );
}

/**
 * Whether `value` survives a JSON round trip unchanged: no functions, symbols, BigInt, NaN/Infinity,
 * undefined (whole value or array item), class instances (Date, Map, ...) or cycles. `undefined`
 * object properties and symbol keys are allowed: they are dropped, as JSON.stringify does. No allocation on the
 * way: this runs on every write.
 */
function isJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return value - value === 0;
    case "object": {
      if (value === null) return true;
      if (depth >= MAX_DEPTH) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const item = value[i];
          if (item === undefined || !isJson(item, depth + 1)) return false;
        }
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      // The prototype is Object.prototype or null, so for-in sees the own enumerable keys that
      // JSON.stringify writes (and is the fastest walk over them).
      for (const key in value) {
        const item = (value as Record<string, unknown>)[key];
        if (item !== undefined && !isJson(item, depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** The path and kind of the first value `isJson` refuses (runs only on the error path). */
function explain(value: unknown, path: string, depth: number): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) refuse(path, String(value));
      return;
    case "object": {
      if (value === null) return;
      if (depth >= MAX_DEPTH) refuse(path, `nesting deeper than ${MAX_DEPTH} (or a cycle)`);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (value[i] === undefined) refuse(`${path}[${i}]`, "undefined");
          explain(value[i], `${path}[${i}]`, depth + 1);
        }
        return;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        refuse(path, `an instance of ${proto?.constructor?.name ?? "a class"}`);
      }
      for (const key of Object.keys(value)) {
        const item = (value as Record<string, unknown>)[key];
        if (item !== undefined) explain(item, `${path}.${key}`, depth + 1);
      }
      return;
    }
    default:
      refuse(path, `a ${typeof value}`);
  }
}

/** Serializes a session value; throws `ERR_SERIALIZATION` or `ERR_PAYLOAD_TOO_LARGE`. */
export function encode(value: unknown, maxPayloadBytes: number): string {
  if (value === undefined) refuse("", "undefined");
  if (!isJson(value, 0)) {
    explain(value, "", 0);
    refuse("", "a value that does not survive a JSON round trip");
  }
  const json = JSON.stringify(value);
  // Byte length only matters near the limit; a UTF-16 string has at most 3 bytes per unit.
  if (json.length * 3 > maxPayloadBytes) {
    const bytes = Buffer.byteLength(json, "utf8");
    if (bytes > maxPayloadBytes) {
      throw new SessionStoreError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        `Session data is ${bytes} bytes serialized; the limit (maxPayloadBytes) is ${maxPayloadBytes}`,
        { details: { bytes, maxPayloadBytes } },
      );
    }
  }
  return json;
}

/** Parses what `encode` wrote; `__proto__` keys come back as plain own data. */
export function decode<T>(json: string): T {
  try {
    return JSON.parse(json) as T;
  } catch (cause) {
    throw new SessionStoreError(ErrorCode.SERIALIZATION, "Stored session data is not valid JSON", {
      cause,
    });
  }
}

/** Escapes glob characters so a prefix or id never becomes a SCAN MATCH pattern. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}
