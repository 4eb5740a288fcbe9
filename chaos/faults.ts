import type { RedisNode } from "../test/support/redis.js";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** SIGSTOP: the process keeps its sockets open and answers nothing, as a stalled host does. */
export function freeze(node: RedisNode): number {
  const pid = node.pid;
  if (pid === undefined) throw new Error(`redis on port ${node.port} is not running`);
  process.kill(pid, "SIGSTOP");
  return pid;
}

/** SIGCONT for a pid frozen earlier; a process that died meanwhile is fine. */
export function thaw(pid: number): void {
  try {
    process.kill(pid, "SIGCONT");
  } catch {
    // already gone
  }
}

/** Freezes `node` for `ms`; resumes it even when the wait is cut short by an error. */
export async function frozenFor(node: RedisNode, ms: number): Promise<void> {
  const pid = freeze(node);
  try {
    await sleep(ms);
  } finally {
    thaw(pid);
  }
}

/** Polls `check` every 100 ms until it is true; throws after `timeoutMs`. */
export async function until(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (performance.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** A logger for stores under fault: their warnings are expected and would flood the output. */
export const silent = { info() {}, warn() {}, error() {} };
