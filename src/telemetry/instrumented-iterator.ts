import type { Outcome } from "./metrics.js";
import type { TracedOperations } from "./traced-operation.js";

/**
 * The iterator of `listSessions()`, recorded as one `list` operation per iteration: the time
 * spent inside the store's `next()` calls (not the caller's loop body), recorded when the
 * iteration ends, breaks or fails.
 */
export function instrumentIterator(
  ops: TracedOperations,
  iterable: AsyncIterable<string>,
): AsyncIterator<string> {
  const { recorder, tracing } = ops;
  const span = tracing.start("list", undefined);
  let iterator: AsyncIterator<string>;
  try {
    iterator =
      span === undefined
        ? iterable[Symbol.asyncIterator]()
        : ops.within(span, () => iterable[Symbol.asyncIterator]());
  } catch (error) {
    ops.failed("list", undefined, span, performance.now(), error);
    throw error;
  }

  let busy = 0;
  let done = false;
  const finish = (outcome: Outcome, error: unknown): void => {
    if (done) return;
    done = true;
    recorder.operation("list", outcome, busy / 1000, error, tracing.exemplarOf(span));
    if (span !== undefined) tracing.end(span, outcome, error, undefined);
  };
  const step = (call: () => Promise<IteratorResult<string>>): Promise<IteratorResult<string>> => {
    const start = performance.now();
    let promise: Promise<IteratorResult<string>>;
    try {
      promise = span === undefined ? call() : ops.within(span, call);
    } catch (error) {
      busy += performance.now() - start;
      finish("error", error);
      throw error;
    }
    return promise.then(
      (result) => {
        busy += performance.now() - start;
        if (result.done) finish("ok", undefined);
        return result;
      },
      (error: unknown) => {
        busy += performance.now() - start;
        finish("error", error);
        throw error;
      },
    );
  };

  const wrapped: AsyncIterator<string> = {
    next: (...args: [] | [unknown]) => step(() => iterator.next(...args)),
  };
  if (typeof iterator.return === "function") {
    const ret = iterator.return;
    wrapped.return = (value?: unknown) =>
      step(() => ret.call(iterator, value)).finally(() => finish("ok", undefined));
  } else {
    wrapped.return = async (value?: unknown) => {
      finish("ok", undefined);
      return { done: true, value } as IteratorResult<string>;
    };
  }
  if (typeof iterator.throw === "function") {
    const thr = iterator.throw;
    wrapped.throw = (error?: unknown) => step(() => thr.call(iterator, error));
  }
  return wrapped;
}
