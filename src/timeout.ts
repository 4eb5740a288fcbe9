/** Thrown by `withTimeout` when the deadline passes first. */
export class TimeoutError extends Error {
  override readonly name = "TimeoutError";

  constructor(
    /** The deadline that passed, ms. */
    readonly ms: number,
    message = `no answer within ${ms} ms`,
  ) {
    super(message);
  }
}

/**
 * `promise`, or a `TimeoutError` once `ms` have passed, whichever comes first. The timer is
 * cleared either way (no pending timer keeps the process alive or fires late) and is unref'd. A
 * non-finite `ms` means no deadline. The promise itself is not cancelled: its late outcome is
 * ignored (a late rejection is not reported as unhandled).
 *
 * @example
 * const reply = await withTimeout(client.ping(), 2_000, "PING");
 */
export function withTimeout<T>(promise: PromiseLike<T>, ms: number, what?: string): Promise<T> {
  if (!Number.isFinite(ms)) return Promise.resolve(promise);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new TimeoutError(ms, what === undefined ? undefined : `${what}: no answer within ${ms} ms`),
      );
    }, ms);
    timer.unref?.();
    Promise.resolve(promise).then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
