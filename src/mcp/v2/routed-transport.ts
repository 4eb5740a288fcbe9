import {
  isJSONRPCRequest,
  type JSONRPCMessage,
  type TransportSendOptions,
  WebStandardStreamableHTTPServerTransport,
  type WebStandardStreamableHTTPServerTransportOptions,
} from "@modelcontextprotocol/server";
import type { AnswerRouter } from "../cross-instance/answers.js";

/**
 * SDK v2's Streamable HTTP server transport (the legacy, 2025-era one) whose server-to-client requests can be answered on
 * any instance: `send` registers each request with the `AnswerRouter` (which gives it an id
 * unique across instances) before it leaves, the router hands the answer to `onmessage` (where
 * the SDK's Protocol receives responses) with the id the Protocol chose, and cancellations
 * follow the same id. The twin of `v1/routed-transport.ts`, line for line; the only place the legacy bridge knows SDK v2's transport.
 */
export class RoutedServerTransport extends WebStandardStreamableHTTPServerTransport {
  constructor(
    options: WebStandardStreamableHTTPServerTransportOptions,
    private readonly answers: AnswerRouter,
  ) {
    super(options);
  }

  override async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const sessionId = this.sessionId;
    if (sessionId === undefined) return super.send(message, options);
    if (isJSONRPCRequest(message)) {
      const wireId = await this.answers.expect(
        sessionId,
        message.id,
        (answer) => this.onmessage?.(answer as JSONRPCMessage),
        this,
      );
      try {
        await super.send({ ...message, id: wireId }, options);
      } catch (err) {
        this.answers.forget(sessionId, wireId);
        throw err;
      }
      return;
    }
    if ("method" in message && message.method === "notifications/cancelled") {
      const requestId = (message.params as { requestId?: string | number } | undefined)?.requestId;
      const wireId =
        requestId === undefined ? undefined : this.answers.wireIdOf(sessionId, requestId, this);
      if (wireId !== undefined) {
        this.answers.forget(sessionId, wireId);
        return super.send(
          { ...message, params: { ...message.params, requestId: wireId } },
          options,
        );
      }
    }
    return super.send(message, options);
  }

  override async close(): Promise<void> {
    if (this.sessionId !== undefined) this.answers.forgetOwner(this.sessionId, this);
    await super.close();
  }
}
