import { acceptsAll } from "../http/node-io.js";
import type { AnswerRouter } from "./answers.js";
import type { StreamRefusal } from "./standalone.js";

/** The messages of a POST left for the SDK once the client's answers were routed. */
export interface RoutedPost {
  messages: unknown[];
  refusal?: StreamRefusal;
}

/**
 * Routes the answers of a POST (responses to server-to-client requests) to the instances that
 * wait for them, and returns what is left for the transport. An answer is acknowledged like the
 * SDK does (202, once the Accept header is right); one this mechanism did not issue stays.
 */
export async function routeAnswers(
  answers: AnswerRouter,
  sessionId: string,
  messages: unknown[],
  accept: string | undefined,
): Promise<RoutedPost> {
  if (!messages.some(isAnswerLike)) return { messages };
  // The SDK's rule for every POST, checked here because these answers never reach it.
  if (!acceptsAll(accept, ["application/json", "text/event-stream"])) {
    return {
      messages,
      refusal: {
        status: 406,
        rpcCode: -32000,
        message: "Not Acceptable: Client must accept both application/json and text/event-stream",
      },
    };
  }
  const rest: unknown[] = [];
  for (const message of messages) {
    if (!isAnswerLike(message) || (await answers.route(sessionId, message)) === "foreign") {
      rest.push(message);
    }
  }
  return { messages: rest };
}

function isAnswerLike(message: unknown): boolean {
  return (
    typeof message === "object" &&
    message !== null &&
    !("method" in message) &&
    "id" in message &&
    ("result" in message || "error" in message)
  );
}
