import type { AnswerRouter } from "../cross-instance/answers.js";
import type { EventStoreLike } from "../event-store.js";
import type { SessionTransport } from "../sessions.js";

/** What every session transport is built with (the SDKs' options of the same names). */
export interface SessionTransportOptions {
  allowedHosts?: string[];
  allowedOrigins?: string[];
  enableDnsRebindingProtection?: boolean;
  enableJsonResponse?: boolean;
  retryInterval?: number;
  keepAliveMs?: number;
}

/**
 * The few things the handler core asks of an MCP SDK: the SDK v1 adapter (`v1/http.ts`) and the
 * v2 legacy bridge (`v2/legacy-http.ts`) each give one. Everything else (sessions in the store,
 * adoption, resumability, cross-instance answers and pushed streams) is the same code for both.
 */
export interface SdkBinding {
  /** A session transport whose server-to-client requests are answerable on any instance. */
  createTransport(
    options: SessionTransportOptions & {
      sessionIdGenerator: () => string;
      eventStore?: EventStoreLike;
    },
    answers: AnswerRouter,
  ): SessionTransport;
  /** The SDK's `isInitializeRequest`. */
  isInitializeRequest(message: unknown): boolean;
  /** Protocol versions a standalone GET may announce (`MCP-Protocol-Version`). */
  readonly supportedProtocolVersions: readonly string[];
}
