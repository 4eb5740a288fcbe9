/** The ioredis clients of the Redis store: how it makes them, tells them apart, names them and waits for them. */
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { type ResolvedOptions, redactUrl } from "../options.js";
import type { RedisClusterConfig } from "../types.js";

/** A standalone or Sentinel `Redis`, or a `Cluster`. */
export type Client = Redis | Cluster;

/** ioredis options of every client this store creates itself. */
export function clientOptions(options: ResolvedOptions): RedisOptions {
  return {
    lazyConnect: true,
    connectTimeout: options.connectTimeout,
    // No per-command `commandTimeout` (a timer per command costs several percent of throughput):
    // the store's watchdog detects a server that stopped answering (see RedisSessionStore), and
    // the lock manager bounds its own commands.
    // Fail fast while disconnected instead of queueing: a call never waits for a reconnect, and a
    // write that timed out for its caller is never sent later.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    // `disconnect()` ends the socket and destroys it after this many ms if the server does not
    // close its side: the watchdog's reconnect must not wait for a frozen server to answer.
    disconnectTimeout: 20,
  };
}

/**
 * A client of any ioredis major (this package's own, or the 5.x a user built): checked by shape,
 * since `instanceof` fails across two copies of ioredis and would turn the client into options.
 */
export function isClient(value: unknown): value is Client {
  if (value instanceof Redis || value instanceof Cluster) return true;
  const candidate = value as Partial<
    Record<"defineCommand" | "sendCommand" | "pipeline" | "disconnect", unknown>
  > | null;
  return (
    typeof candidate === "object" &&
    candidate !== null &&
    typeof candidate.defineCommand === "function" &&
    typeof candidate.sendCommand === "function" &&
    typeof candidate.pipeline === "function" &&
    typeof candidate.disconnect === "function"
  );
}

/** A Cluster client of any ioredis major: only a Cluster has `nodes()`. */
export function isCluster(client: Client): client is Cluster {
  return client instanceof Cluster || typeof (client as { nodes?: unknown }).nodes === "function";
}

export function isClusterConfig(value: unknown): value is RedisClusterConfig {
  return typeof value === "object" && value !== null && "clusterNodes" in value;
}

/** `host:port` of a seed node in any form ioredis takes (number, "host:port", URL, object). */
function hostPort(node: unknown): string {
  if (typeof node === "number") return `localhost:${node}`;
  if (typeof node === "string") {
    if (/^rediss?:\/\//.test(node)) {
      try {
        const u = new URL(node);
        return `${u.hostname}:${u.port || 6379}`;
      } catch {
        return redactUrl(node);
      }
    }
    return node.slice(node.lastIndexOf("@") + 1);
  }
  const { host, port } = (node ?? {}) as { host?: string; port?: number };
  return `${host ?? "localhost"}:${port ?? 6379}`;
}

/** host:port of a client (its seeds or Sentinels when it has some), for logs and metric labels: never a password. */
export function describeClient(client: Client, url?: string): string {
  if (url !== undefined) return hostPort(url);
  if (isCluster(client)) {
    const nodes = client.nodes().map((n) => hostPort(n.options));
    return nodes.length > 0 ? `cluster ${nodes.join(",")}` : "cluster";
  }
  const { host, port, sentinels, name } = client.options;
  if ((sentinels?.length ?? 0) > 0) {
    return `sentinel "${name ?? "mymaster"}" via ${(sentinels ?? []).map(hostPort).join(",")}`;
  }
  return `${host ?? "localhost"}:${port ?? 6379}`;
}

/** Where the store's data lives, for messages: a redacted URL, or the seeds of a Cluster, or the Sentinels. */
export function describeTarget(options: ResolvedOptions, client: Client): string {
  const redis = options.redis;
  if (isClusterConfig(redis)) return `cluster ${redis.clusterNodes.map(hostPort).join(",")}`;
  if (redis === undefined || (options.redisUrlGiven && !isClient(redis))) {
    const described = describeClient(client);
    return described.startsWith("sentinel") ? described : redactUrl(options.redisUrl);
  }
  return describeClient(client);
}

/** The error `promise` rejects with, or undefined when it resolves. */
export function settle(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (err: unknown) => err ?? new Error("failed"),
  );
}

/** Connects `client` if it is not yet, and checks that it answers. */
export async function whenReady(client: Client): Promise<void> {
  if (client.status === "wait") await client.connect();
  else if (client.status !== "ready") await waitReady(client);
  await client.ping();
}

function waitReady(client: Client): Promise<void> {
  return new Promise((resolve, reject) => {
    const onReady = () => {
      client.off("end", onEnd);
      resolve();
    };
    const onEnd = () => {
      client.off("ready", onReady);
      reject(new Error("connection ended"));
    };
    client.once("ready", onReady);
    client.once("end", onEnd);
  });
}
