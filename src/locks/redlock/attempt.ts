import { randomBytes } from "node:crypto";
import type { Keys } from "./keys.js";
import type { NodeSet, NodeState } from "./nodes.js";

/** Clock drift allowance: 1% of the lease plus 2 ms for Redis expiry precision (redis.io spec). */
const DRIFT_FACTOR = 0.01;
const DRIFT_FLOOR_MS = 2;

export function drift(ttlMs: number): number {
  return Math.floor(ttlMs * DRIFT_FACTOR) + DRIFT_FLOOR_MS;
}

/** What one Redlock attempt came to. */
export type AttemptResult =
  | { kind: "granted"; value: string; token: number; validityMs: number }
  /** Another owner holds the lock; `pttl` is the shortest lease left among the nodes (-1: unknown). */
  | { kind: "held"; pttl: number }
  /** The lock is free but an earlier waiter of the cross-process queue comes first. */
  | { kind: "queued" }
  /** Too few nodes answered (or granted but could not be fenced in time). */
  | { kind: "quorum" };

export interface AttemptOptions {
  ttlMs: number;
  /** The waiter's ticket in the cross-process queue; "" for a single try that does not queue. */
  ticket: string;
  /** Arrival time of the waiter, epoch ms: the ticket's score. */
  arrival: number;
  /** How long a ticket stays in a queue without being refreshed. */
  heartbeatMs: number;
  /** Names this attempt in a hand-over message: the waiter's clock when it was sent. */
  stamp: string;
  /** The lease a release hands over to the ticket (the waiter confirms the rest later). */
  handoverMs: number;
}

/**
 * One Redlock attempt on every node (redis.io distributed locks): a random value, the clock
 * started before the first command, validity = ttl - elapsed - drift, and a fencing token that
 * a quorum stores before the validity check. A failed attempt releases what it got before
 * returning.
 */
export async function attempt(
  nodes: NodeSet,
  keys: Keys,
  options: AttemptOptions,
): Promise<AttemptResult> {
  const { ttlMs, ticket } = options;
  // A queued waiter's value is its ticket, so that a release can hand the lock to it.
  const value = ticket !== "" ? ticket : randomBytes(20).toString("hex");
  const single = nodes.list.length === 1;
  const start = performance.now();
  const replies = await nodes.all((c) =>
    c.mssLockAcquire(
      keys.lock,
      keys.fence,
      keys.queue,
      keys.hb,
      keys.grant,
      value,
      ttlMs,
      ticket,
      options.arrival,
      options.heartbeatMs,
      single ? 1 : 0,
      options.stamp,
      options.handoverMs,
    ),
  );
  let answered = 0;
  let pttl = -1;
  let held = false;
  let token = 0;
  const granted: NodeState[] = [];
  // Nodes that refused, or were never sent the command: nothing of ours to release there.
  const others: NodeState[] = [];
  replies.forEach((reply, i) => {
    const node = nodes.list[i] as NodeState;
    if (!reply.ok) {
      if (!reply.sent) others.push(node);
      return;
    }
    answered += 1;
    const [code, n] = reply.value;
    if (code === 1) {
      granted.push(node);
      token = Math.max(token, Number(n));
    } else {
      others.push(node);
      if (code === 0) {
        held = true;
        if (n >= 0) pttl = pttl < 0 ? n : Math.min(pttl, n);
      }
    }
  });
  let ok = granted.length >= nodes.quorum;
  if (ok && !single) {
    // Each granting node proposed max(its counter + 1, its clock): majorities intersect, so the
    // previous holder's token is below at least one proposal unless those nodes lost their data.
    const acks = await nodes.all(
      (c) => c.mssLockFence(keys.lock, keys.fence, value, token),
      granted,
    );
    ok = acks.filter((a) => a.ok && a.value === 1).length >= nodes.quorum;
  }
  const validityMs = ttlMs - (performance.now() - start) - drift(ttlMs);
  if (ok && validityMs > 0) {
    // A node that refused (or never answered) may keep our ticket in its queue.
    if (ticket !== "" && granted.length < nodes.list.length) {
      void nodes.dequeue(
        keys,
        ticket,
        nodes.list.filter((n) => !granted.includes(n)),
        true,
      );
    }
    return { kind: "granted", value, token, validityMs };
  }
  // Every node that did not refuse may hold our value (a timed-out command can still land).
  const release = nodes.list.filter((n) => !others.includes(n));
  if (release.length > 0) await nodes.releaseValue(keys, value, release);
  if (answered < nodes.quorum || granted.length >= nodes.quorum) return { kind: "quorum" };
  return held ? { kind: "held", pttl } : { kind: "queued" };
}
