import type { IncomingMessage, ServerResponse } from "node:http";
import { parseEventId, STANDALONE_STREAM_ID } from "../event-store.js";
import { acceptsAll } from "../http/node-io.js";
import type { StandaloneStreams, StreamRefusal } from "./standalone.js";

/** True when a GET opens or resumes the standalone stream (not a request stream). */
export function isStandaloneGet(lastEventId: string | string[] | undefined): boolean {
  if (lastEventId === undefined) return true;
  return (
    typeof lastEventId === "string" && parseEventId(lastEventId)?.streamId === STANDALONE_STREAM_ID
  );
}

/**
 * Serves a GET for the standalone stream with the SDK's checks (Accept, protocol version header),
 * the stream itself coming from the session's event log.
 */
export async function serveStandalone(
  streams: StandaloneStreams,
  sessionId: string,
  req: IncomingMessage,
  res: ServerResponse,
  /** The installed SDK's `SUPPORTED_PROTOCOL_VERSIONS`. */
  supportedVersions: readonly string[],
): Promise<StreamRefusal | undefined> {
  if (!acceptsAll(req.headers.accept, ["text/event-stream"])) {
    return {
      status: 406,
      rpcCode: -32000,
      message: "Not Acceptable: Client must accept text/event-stream",
    };
  }
  const version = req.headers["mcp-protocol-version"];
  if (typeof version === "string" && !supportedVersions.includes(version)) {
    return {
      status: 400,
      rpcCode: -32000,
      message: `Bad Request: Unsupported protocol version: ${version} (supported versions: ${supportedVersions.join(", ")})`,
    };
  }
  const lastEventId = req.headers["last-event-id"];
  return streams.serve(sessionId, res, {
    lastEventId: typeof lastEventId === "string" ? lastEventId : undefined,
    // Older clients cannot take the empty priming event (the SDK's rule).
    protocolVersion: typeof version === "string" ? version : "",
  });
}
