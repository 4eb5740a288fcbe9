import { Redis } from "ioredis";
import type { RedisClusterHandle, RedisNode } from "./redis.js";

type SlotRange = [number, number, [string, number, ...unknown[]], ...unknown[]];

/** The master that serves `key` now, asked of any live node. */
export async function ownerOf(cluster: RedisClusterHandle, key: string): Promise<RedisNode> {
  const owners = await ownersOf(cluster, [key]);
  return owners[0] as RedisNode;
}

/** The master serving each key, in order, as a node other than `avoid` sees it. */
export async function ownersOf(
  cluster: RedisClusterHandle,
  keys: string[],
  avoid?: RedisNode,
): Promise<RedisNode[]> {
  const seed = cluster.nodes.find((n) => n.pid !== undefined && n !== avoid) as RedisNode;
  const admin = new Redis(seed.port, seed.host, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    commandTimeout: 1000,
  });
  try {
    await admin.connect();
    const ranges = (await admin.call("CLUSTER", "SLOTS")) as SlotRange[];
    const owners: RedisNode[] = [];
    for (const key of keys) {
      const slot = Number(await admin.call("CLUSTER", "KEYSLOT", key));
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      const node = cluster.nodes.find((n) => n.port === range?.[2][1]);
      if (node === undefined) throw new Error(`no master serves slot ${slot}`);
      owners.push(node);
    }
    return owners;
  } finally {
    admin.disconnect();
  }
}

/** Waits until `replicas` replicas of the master at `node` acknowledged everything it has. */
export async function waitReplicated(node: RedisNode, replicas = 1): Promise<void> {
  const client = new Redis(node.port, node.host, { lazyConnect: true });
  try {
    await client.connect();
    for (let i = 0; i < 50; i++) {
      if (Number(await client.call("WAIT", String(replicas), "200")) >= replicas) return;
    }
    throw new Error(`the replica of port ${node.port} did not catch up`);
  } finally {
    client.disconnect();
  }
}
