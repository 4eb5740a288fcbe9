/**
 * Every error the library raises is a `SessionStoreError` with a stable `code`.
 * Branch on `err.code` (it works even when two copies of the package are loaded).
 */
export const ErrorCode = {
  INVALID_SESSION_ID: "ERR_INVALID_SESSION_ID",
  INVALID_ARGUMENT: "ERR_INVALID_ARGUMENT",
  PAYLOAD_TOO_LARGE: "ERR_PAYLOAD_TOO_LARGE",
  SERIALIZATION: "ERR_SERIALIZATION",
  BACKEND_UNAVAILABLE: "ERR_BACKEND_UNAVAILABLE",
  LOCK_TIMEOUT: "ERR_LOCK_TIMEOUT",
  LOCK_LOST: "ERR_LOCK_LOST",
  LOCK_QUORUM: "ERR_LOCK_QUORUM",
  CONFLICT: "ERR_CONFLICT",
  STORE_CLOSED: "ERR_STORE_CLOSED",
  ABORTED: "ERR_ABORTED",
  /** The handle never existed, was deleted, or belongs to another principal. */
  HANDLE_NOT_FOUND: "ERR_HANDLE_NOT_FOUND",
  /** The handle existed for this principal and its lifetime ran out: start again. */
  HANDLE_EXPIRED: "ERR_HANDLE_EXPIRED",
  /** An optional peer dependency (named in the message, with its version range) is not installed. */
  PEER_DEPENDENCY_MISSING: "ERR_PEER_DEPENDENCY_MISSING",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const CODES = new Set<string>(Object.values(ErrorCode));

/**
 * The one error class of the library.
 *
 * @example
 * try { await store.setSession(id, data); }
 * catch (err) { if (isSessionStoreError(err) && err.code === "ERR_PAYLOAD_TOO_LARGE") ... }
 */
export class SessionStoreError extends Error {
  override readonly name = "SessionStoreError";
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options?.details !== undefined) this.details = options.details;
  }
}

/** True for a `SessionStoreError` from any copy of this package (checks the code, not the class). */
export function isSessionStoreError(err: unknown): err is SessionStoreError {
  return (
    err instanceof Error &&
    err.name === "SessionStoreError" &&
    typeof (err as unknown as { code?: unknown }).code === "string" &&
    CODES.has((err as unknown as { code: string }).code)
  );
}

/** The code of a library error, or `"unknown"` for anything else (used as a metric label). */
export function errorCodeOf(err: unknown): ErrorCode | "unknown" {
  return isSessionStoreError(err) ? err.code : "unknown";
}
