import { type AttemptResult, drift } from "./attempt.js";
import type { Keys } from "./keys.js";
import type { NodeSet, NodeState } from "./nodes.js";

/** What a node's release script said when it handed the lock to a waiter's ticket. */
export interface Handover {
  /** The stamp of the waiter's attempt whose refresh the node measured from (waiter's clock, ms). */
  stamp: number;
  /** Node ms between that refresh and the hand-over. */
  elapsedMs: number;
  /** The node's fencing token proposal, already stored in its counter. */
  token: number;
  /** The releaser's token, below every proposal (0 when the releaser held no granted lock). */
  floor: number;
}

/** Reads "h <ticket> <stamp> <elapsedMs> <token> <floor>"; undefined for any other message. */
export function parseHandover(message: string): { ticket: string; handover: Handover } | undefined {
  if (!message.startsWith("h ")) return undefined;
  const [, ticket, stamp, elapsed, token, floor] = message.split(" ");
  const handover = {
    stamp: Number(stamp),
    elapsedMs: Number(elapsed),
    token: Number(token),
    floor: Number(floor),
  };
  if (ticket === undefined || !Object.values(handover).every(Number.isFinite)) return undefined;
  return { ticket, handover };
}

/**
 * Counts a lock that releases handed to `ticket` on the nodes of `handed`, without an acquire
 * round trip. Each node set the key to the ticket with a `leaseMs` lease `elapsedMs` after the
 * waiter's attempt `stamp` reached it, so the lease started no earlier than stamp + elapsed on
 * the waiter's clock: validity = lease - (now - that) - drift, as for an attempt.
 *
 * The token: with one node, its proposal. With N nodes, when one holder's release handed the lock
 * over on every node counted, each proposal is above that holder's token and already stored by
 * its node, so the smallest proposal is above every earlier token and stored on a quorum: no
 * write-back is needed. Otherwise (a failed attempt or a waiter that gave up handed it on), the
 * largest proposal is written back to the quorum (FENCE, which also confirms each key still holds
 * the ticket) before the validity check, as an attempt does.
 *
 * "fallback": too few nodes or no validity left; the waiter makes a normal attempt, which takes
 * the keys it already holds as its own and releases everything if it fails.
 */
export async function takeHandover(
  nodes: NodeSet,
  keys: Keys,
  ticket: string,
  leaseMs: number,
  handed: ReadonlyMap<NodeState, Handover>,
): Promise<AttemptResult | { kind: "fallback" }> {
  if (handed.size < nodes.quorum) return { kind: "fallback" };
  const list = [...handed.values()];
  const floor = (list[0] as Handover).floor;
  const oneRelease = floor > 0 && list.every((h) => h.floor === floor);
  let token = Math.max(...list.map((h) => h.token));
  let ok = true;
  if (nodes.list.length > 1 && oneRelease) {
    token = Math.min(...list.map((h) => h.token));
  } else if (nodes.list.length > 1) {
    const granted = [...handed.keys()];
    const acks = await nodes.all(
      (c) => c.mssLockFence(keys.lock, keys.fence, ticket, token),
      granted,
    );
    ok = acks.filter((a) => a.ok && a.value === 1).length >= nodes.quorum;
  }
  const start = Math.min(...list.map((h) => h.stamp + h.elapsedMs));
  // The nodes' clocks measured the elapsed time: allow them the same 1% rate error as the lease.
  const slack = Math.ceil(Math.max(...list.map((h) => h.elapsedMs)) / 100);
  const validityMs = leaseMs - (performance.now() - start) - drift(leaseMs) - slack;
  if (!ok || validityMs <= 0) return { kind: "fallback" };
  // Nodes that did not hand over yet keep the ticket queued: their release is usually on its way
  // and makes the lock ours there too. The ticket leaves them when we release.
  return { kind: "granted", value: ticket, token, validityMs };
}
