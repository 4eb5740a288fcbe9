import { hashId } from "../codec.js";
import { ErrorCode, SessionStoreError } from "../errors.js";

/*
 * The errors of the lock managers (memory and Redlock alike). A session id appears in a message
 * only as a short hash.
 */

/** `ERR_LOCK_LOST` with the reason in the message. */
export function lockLost(resource: string, why: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.LOCK_LOST,
    `Lock of session ${hashId(resource)} lost: ${why}`,
  );
}

/** The reason `lock.signal` carries after `release()`: a lost lock, marked as given back. */
export function lockReleased(resource: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.LOCK_LOST,
    `Lock of session ${hashId(resource)} lost: released`,
    { details: { released: true } },
  );
}

/** True when `reason` (of an aborted `lock.signal`) says the holder released the lock itself. */
export function isReleased(reason: unknown): boolean {
  return (reason as SessionStoreError | undefined)?.details?.released === true;
}

/** The lock is held by another owner and did not come free within the wait. */
export function timeoutError(resource: string, waitTimeoutMs: number): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.LOCK_TIMEOUT,
    `Lock of session ${hashId(resource)} is held by another owner (waited ${waitTimeoutMs} ms)`,
    { details: { waitTimeoutMs } },
  );
}

/** Too few Redlock nodes answered: infrastructure, not contention. */
export function quorumError(resource: string, detail: string): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.LOCK_QUORUM,
    `Lock of session ${hashId(resource)}: ${detail} (too few Redlock nodes answered)`,
  );
}

/** The caller's AbortSignal cancelled the wait. */
export function abortedError(resource: string, reason: unknown): SessionStoreError {
  return new SessionStoreError(
    ErrorCode.ABORTED,
    `Lock acquisition for session ${hashId(resource)} aborted`,
    { cause: reason },
  );
}

export function closedError(): SessionStoreError {
  return new SessionStoreError(ErrorCode.STORE_CLOSED, "The session store is closed");
}
