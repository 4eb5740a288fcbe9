/*
 * The Redlock lock manager lives in ./redlock/: scripts, nodes (the one way to call a node),
 * attempt (one round of the algorithm), lock (a held lease), waiters (queueing and retries) and
 * wakeups (pub/sub on release). This module keeps the import path of its users.
 */
export { RedlockManager } from "./redlock/manager.js";
export type { RedlockNode } from "./redlock/nodes.js";
export { ACQUIRE, DEQUEUE, EXTEND, FENCE, RELEASE } from "./redlock/scripts.js";
