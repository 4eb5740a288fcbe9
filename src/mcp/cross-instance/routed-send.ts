import type { AnswerRouter, RequestId } from "./answers.js";

/** A JSON-RPC message as both SDKs' transports carry it (structurally). */
type Message = { jsonrpc: "2.0"; id?: RequestId; method?: string; params?: unknown };

/** What `sendRouted` needs of a transport: its session and where its Protocol receives. */
export interface RoutedTransport<M> {
  readonly sessionId?: string | undefined;
  onmessage?: ((message: M, ...rest: never[]) => void) | undefined;
}

/**
 * `send` of a Streamable HTTP server transport whose server-to-client requests can be answered on
 * any instance, for either SDK: a request is registered with the `AnswerRouter` (which gives it
 * an id unique across instances) before it leaves, the router hands the answer to the transport's
 * `onmessage` (where the SDK's Protocol receives responses) under the id the Protocol chose, and
 * a cancellation follows the same id. `send` is the SDK transport's own.
 */
export async function sendRouted<M extends object>(
  answers: AnswerRouter,
  transport: RoutedTransport<M> & object,
  message: M,
  send: (message: M) => Promise<void>,
): Promise<void> {
  const sessionId = transport.sessionId;
  const msg = message as unknown as Message;
  if (sessionId === undefined) return send(message);
  if (msg.id !== undefined && typeof msg.method === "string") {
    const wireId = await answers.expect(
      sessionId,
      msg.id,
      (answer) => transport.onmessage?.(answer as unknown as M),
      transport,
    );
    try {
      await send({ ...message, id: wireId });
    } catch (err) {
      answers.forget(sessionId, wireId);
      throw err;
    }
    return;
  }
  if (msg.method === "notifications/cancelled") {
    const params = (msg.params ?? {}) as { requestId?: RequestId };
    const wireId =
      params.requestId === undefined
        ? undefined
        : answers.wireIdOf(sessionId, params.requestId, transport);
    if (wireId !== undefined) {
      answers.forget(sessionId, wireId);
      return send({ ...message, params: { ...params, requestId: wireId } });
    }
  }
  return send(message);
}
