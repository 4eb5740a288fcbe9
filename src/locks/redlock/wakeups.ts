import type { Cluster, Redis } from "ioredis";
import { isCluster } from "../../stores/redis-clients.js";
import type { NodeSet, NodeState } from "./nodes.js";

type Client = Redis | Cluster;

/**
 * Pub/sub wake-ups: a release publishes on the resource's channel that it handed the lock to the
 * queue's head (or, to an older client, the head's ticket, so that it retries at once instead of
 * polling). One subscriber connection per node, opened on
 * first use; a node that is down delays nobody (its messages are a shortcut, never required).
 */
export class Wakeups {
  private readonly handlers = new Map<string, (message: string, node: NodeState) => void>();
  private readonly subscribers = new Map<NodeState, Client>();

  constructor(private readonly nodes: NodeSet) {}

  /**
   * Listens on `channel` on every node; waits only for the subscribers that are connected. A
   * message comes with the node it came from (hand-overs are counted per node).
   */
  async subscribe(
    channel: string,
    onMessage: (message: string, node: NodeState) => void,
  ): Promise<void> {
    this.handlers.set(channel, onMessage);
    await Promise.all(
      this.nodes.list.map((node) => {
        const subscriber = this.subscriberOf(node);
        const done = subscriber.subscribe(channel).catch(() => {});
        return subscriber.status === "ready" ? this.nodes.bounded(done).catch(() => {}) : undefined;
      }),
    );
  }

  unsubscribe(channel: string): void {
    this.handlers.delete(channel);
    for (const subscriber of this.subscribers.values())
      subscriber.unsubscribe(channel).catch(() => {});
  }

  close(): void {
    this.handlers.clear();
    for (const subscriber of this.subscribers.values()) subscriber.disconnect();
    this.subscribers.clear();
  }

  private subscriberOf(node: NodeState): Client {
    const known = this.subscribers.get(node);
    if (known !== undefined) return known;
    const client = node.client as Client;
    const subscriber = isCluster(client)
      ? (client as Cluster).duplicate()
      : (client as Redis).duplicate({
          lazyConnect: false,
          enableOfflineQueue: true,
          autoResubscribe: true,
          maxRetriesPerRequest: null,
        });
    // Connection errors of the subscriber are counted through the data commands of the node.
    subscriber.on("error", () => {});
    subscriber.on("message", (channel: string, message: string) => {
      this.handlers.get(channel)?.(message, node);
    });
    this.subscribers.set(node, subscriber);
    return subscriber;
  }
}
