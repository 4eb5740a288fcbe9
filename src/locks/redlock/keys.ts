/** The key suffixes the store's key layout is asked for. */
export type KeySuffix = "lock" | "fence" | "queue" | "chan";

/**
 * The keys of one resource, all under the session's hash tag: lock (value, PX lease), fence
 * (token counter), queue (ZSET of waiter tickets), queue:hb (ticket heartbeats), queue:grant
 * (what a hand-over needs of each ticket) and the channel a release publishes on.
 */
export interface Keys {
  lock: string;
  fence: string;
  queue: string;
  hb: string;
  grant: string;
  chan: string;
}

export function keysOf(key: (id: string, suffix: KeySuffix) => string, id: string): Keys {
  return {
    lock: key(id, "lock"),
    fence: key(id, "fence"),
    queue: key(id, "queue"),
    hb: `${key(id, "queue")}:hb`,
    grant: `${key(id, "queue")}:grant`,
    chan: key(id, "chan"),
  };
}
