import { Redis } from "ioredis";
import type { RedisNode } from "../test/support/redis.js";

/** One line of CLUSTER NODES. */
export interface ClusterNodeInfo {
  id: string;
  port: number;
  flags: string[];
  /** Id of the master of a replica, "-" for a master. */
  masterId: string;
  slots: Array<[number, number]>;
}

/** Runs one command on `node` through a short-lived client that gives up after `timeoutMs`. */
export async function adminCall(
  node: RedisNode,
  args: string[],
  timeoutMs = 1000,
): Promise<unknown> {
  const client = new Redis(node.port, node.host, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on("error", () => {
    // The caller sees the command's rejection.
  });
  try {
    await client.connect();
    return await client.call(args[0] as string, ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

export async function clusterNodes(node: RedisNode): Promise<ClusterNodeInfo[]> {
  const text = String(await adminCall(node, ["CLUSTER", "NODES"]));
  return text
    .trim()
    .split("\n")
    .map((line) => {
      const [id = "", addr = "", flags = "", masterId = "", , , , , ...slots] = line.split(" ");
      return {
        id,
        port: Number(addr.split("@")[0]?.split(":")[1]),
        flags: flags.split(","),
        masterId,
        slots: slots
          .filter((s) => /^\d/.test(s))
          .map((s) => {
            const [from, to] = s.split("-").map(Number);
            return [from as number, to ?? (from as number)] as [number, number];
          }),
      };
    });
}

/** The master serving `key` and its replicas' ids, as `via` sees the cluster. */
export async function ownerOf(
  via: RedisNode,
  key: string,
): Promise<{ master: ClusterNodeInfo; replicaIds: string[] }> {
  const slot = Number(await adminCall(via, ["CLUSTER", "KEYSLOT", key]));
  const nodes = await clusterNodes(via);
  const master = nodes.find(
    (n) => n.flags.includes("master") && n.slots.some(([a, b]) => slot >= a && slot <= b),
  );
  if (!master) throw new Error(`no master serves slot ${slot}`);
  const replicaIds = nodes.filter((n) => n.masterId === master.id).map((n) => n.id);
  return { master, replicaIds };
}

/** Whether every node in `nodes` reports cluster_state:ok. */
export async function clusterOk(nodes: RedisNode[]): Promise<boolean> {
  const states = await Promise.all(
    nodes.map(async (n) => String(await adminCall(n, ["CLUSTER", "INFO"]))),
  );
  return states.every((s) => s.includes("cluster_state:ok"));
}
