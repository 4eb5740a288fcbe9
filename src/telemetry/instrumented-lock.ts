import { ErrorCode, errorCodeOf } from "../errors.js";
import type { Lock, LockOptions, SessionStore } from "../types.js";
import type { LockOutcome, Outcome } from "./metrics.js";
import { reportSwallowed, safely } from "./safely.js";
import type { TracedOperations } from "./traced-operation.js";

const OK = (): Outcome => "ok";

function lockOutcomeOf(error: unknown): LockOutcome {
  const code = errorCodeOf(error);
  if (code === ErrorCode.LOCK_TIMEOUT) return "timeout";
  if (code === ErrorCode.ABORTED) return "aborted";
  return "error";
}

/**
 * `store.acquireLock(...args)`, recorded: a waiter while it waits, the wait by lock outcome, the
 * `lock_acquire` operation and its span; the lock it resolves with is wrapped by `instrumentLock`.
 * `countsLoss`: the store has no backend hooks, so this wrapper counts lost leases itself.
 */
export function acquireInstrumentedLock(
  ops: TracedOperations,
  store: SessionStore,
  args: [id: string, options?: LockOptions],
  countsLoss: boolean,
): Promise<Lock> {
  const { recorder, tracing } = ops;
  const id = args[0];
  const span = tracing.start("lock_acquire", id);
  const start = performance.now();
  recorder.count("lockWaiters", 1);
  const settle = (outcome: Outcome, lockOutcome: LockOutcome, error: unknown): void => {
    const seconds = (performance.now() - start) / 1000;
    const exemplar = tracing.exemplarOf(span);
    recorder.count("lockWaiters", -1);
    recorder.lockAcquired(lockOutcome, seconds, exemplar);
    recorder.operation("lock_acquire", outcome, seconds, error, exemplar);
    if (span !== undefined) tracing.end(span, outcome, error, id);
  };
  const fail = (error: unknown): never => {
    settle("error", lockOutcomeOf(error), error);
    throw error;
  };
  const call = (): Promise<Lock> => store.acquireLock(...args);
  let promise: Promise<Lock>;
  try {
    promise = span === undefined ? call() : ops.within(span, call);
  } catch (error) {
    return fail(error);
  }
  return promise.then((lock) => {
    settle("ok", "acquired", undefined);
    return safely("wrap lock", () => instrumentLock(ops, lock, countsLoss), lock);
  }, fail);
}

/**
 * The same lock, with `extend` and `release` recorded as operations, and the time it is held
 * recorded once: at release, or when its signal aborts (the lease ended).
 */
function instrumentLock(ops: TracedOperations, lock: Lock, countsLoss: boolean): Lock {
  const { recorder } = ops;
  const acquiredAt = performance.now();
  let released = false;
  let ended = false;
  const endHold = (): void => {
    if (ended) return;
    ended = true;
    recorder.count("locksHeld", -1);
    recorder.lockHeld((performance.now() - acquiredAt) / 1000);
  };
  recorder.count("locksHeld", 1);
  try {
    const onAbort = (): void => {
      // Without backend hooks, a lease that ends before release() is the only sign of a loss.
      if (!released && countsLoss) recorder.count("lockLost", 1);
      endHold();
    };
    if (lock.signal.aborted) onAbort();
    else lock.signal.addEventListener("abort", onAbort, { once: true });
  } catch (error) {
    reportSwallowed("lock signal", error);
  }
  const resource = lock.resource;
  return {
    get resource() {
      return lock.resource;
    },
    get fencingToken() {
      return lock.fencingToken;
    },
    get expiresAt() {
      return lock.expiresAt;
    },
    get signal() {
      return lock.signal;
    },
    extend: (...args: [ttlMs?: number]) =>
      ops.run("lock_extend", resource, () => lock.extend(...args), OK),
    release: () => {
      released = true;
      endHold();
      return ops.run("lock_release", resource, () => lock.release(), OK);
    },
  };
}
