import {
  type JSONRPCMessage,
  type TransportSendOptions,
  WebStandardStreamableHTTPServerTransport,
  type WebStandardStreamableHTTPServerTransportOptions,
} from "@modelcontextprotocol/server";
import type { AnswerRouter } from "../cross-instance/answers.js";
import { sendRouted } from "../cross-instance/routed-send.js";

/**
 * SDK v2's Streamable HTTP server transport (the legacy, 2025-era one) whose server-to-client requests can be answered on
 * any instance: `send` registers each request with the `AnswerRouter` (which gives it an id
 * unique across instances) before it leaves, the router hands the answer to `onmessage` (where
 * the SDK's Protocol receives responses) with the id the Protocol chose, and cancellations
 * follow the same id. The twin of `v1/routed-transport.ts` (both send through `sendRouted`); the only place the legacy bridge knows SDK v2's transport.
 */
export class RoutedServerTransport extends WebStandardStreamableHTTPServerTransport {
  constructor(
    options: WebStandardStreamableHTTPServerTransportOptions,
    private readonly answers: AnswerRouter,
  ) {
    super(options);
  }

  override send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    return sendRouted(this.answers, this, message, (routed) => super.send(routed, options));
  }

  override async close(): Promise<void> {
    if (this.sessionId !== undefined) this.answers.forgetOwner(this.sessionId, this);
    await super.close();
  }
}
