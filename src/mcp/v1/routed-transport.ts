import {
  WebStandardStreamableHTTPServerTransport,
  type WebStandardStreamableHTTPServerTransportOptions,
} from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { AnswerRouter } from "../cross-instance/answers.js";
import { sendRouted } from "../cross-instance/routed-send.js";

/**
 * SDK v1's Streamable HTTP server transport whose server-to-client requests can be answered on
 * any instance: `send` registers each request with the `AnswerRouter` (which gives it an id
 * unique across instances) before it leaves, the router hands the answer to `onmessage` (where
 * the SDK's Protocol receives responses) with the id the Protocol chose, and cancellations
 * follow the same id. The only place that knows SDK v1.
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
