/** How long a resume waits for the stream it replaces to finish closing, ms. */
const CLOSE_WAIT_MS = 1000;
const STEP_MS = 10;

/**
 * Runs a transport call again while it answers 409 to a resume: a client that lost its stream
 * and resumed at once (`Last-Event-ID`) can arrive before the transport noticed the old
 * connection close, and the SDK refuses a second connection for one stream.
 */
export async function retryWhileClosing(
  resuming: boolean,
  call: () => Promise<Response>,
): Promise<Response> {
  let response = await call();
  if (!resuming) return response;
  const deadline = Date.now() + CLOSE_WAIT_MS;
  while (response.status === 409 && Date.now() < deadline) {
    await response.body?.cancel().catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, STEP_MS));
    response = await call();
  }
  return response;
}
