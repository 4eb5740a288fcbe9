import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACQUIRE, EXTEND, FENCE, RELEASE } from "../src/locks/redlock.js";
import { CAS_SCRIPT, SET_SCRIPT } from "../src/stores/scripts.js";
import { type RedisNode, startRedis } from "./support/redis.js";

/**
 * ioredis speaks RESP2 only, so this runs every Lua script of the library over a raw connection in
 * RESP2 and in RESP3 (HELLO 3) and checks both give the same answers: a RESP3 client on the same
 * server (another service, node-redis) sees the same records and locks.
 */
type Value = string | number | null | boolean | Value[] | { [k: string]: Value };

class RawClient {
  private buffer = Buffer.alloc(0);
  private readonly waiting: Array<(v: Value) => void> = [];
  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      for (;;) {
        const parsed = parse(this.buffer, 0);
        if (parsed === undefined) break;
        this.buffer = this.buffer.subarray(parsed.end);
        // RESP3 pushes (">") are not replies.
        if (parsed.push) continue;
        this.waiting.shift()?.(parsed.value);
      }
    });
  }
  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => resolve(new RawClient(socket)));
      socket.once("error", reject);
    });
  }
  call(...args: Array<string | number>): Promise<Value> {
    const parts = args.map(String);
    let out = `*${parts.length}\r\n`;
    for (const p of parts) out += `$${Buffer.byteLength(p)}\r\n${p}\r\n`;
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.write(out);
    });
  }
  close(): void {
    this.socket.destroy();
  }
}

function parse(buf: Buffer, at: number): { value: Value; end: number; push?: boolean } | undefined {
  const eol = buf.indexOf("\r\n", at);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[at] as number);
  const line = buf.toString("utf8", at + 1, eol);
  const next = eol + 2;
  const aggregate = (count: number, pairs: boolean, push = false) => {
    const items: Value[] = [];
    let pos = next;
    for (let i = 0; i < count * (pairs ? 2 : 1); i++) {
      const item = parse(buf, pos);
      if (item === undefined) return undefined;
      items.push(item.value);
      pos = item.end;
    }
    if (!pairs) return { value: items, end: pos, push };
    const map: Record<string, Value> = {};
    for (let i = 0; i < items.length; i += 2) map[String(items[i])] = items[i + 1] as Value;
    return { value: map, end: pos };
  };
  switch (type) {
    case "+":
      return { value: line, end: next };
    case "-":
      return { value: `ERROR ${line}`, end: next };
    case ":":
      return { value: Number(line), end: next };
    case ",":
      return { value: Number(line), end: next };
    case "_":
      return { value: null, end: next };
    case "#":
      return { value: line === "t", end: next };
    case "$":
    case "=": {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return undefined;
      return { value: buf.toString("utf8", next, next + n), end: next + n + 2 };
    }
    case "*":
    case "~":
      return Number(line) < 0 ? { value: null, end: next } : aggregate(Number(line), false);
    case ">":
      return aggregate(Number(line), false, true);
    case "%":
      return aggregate(Number(line), true);
    default:
      throw new Error(`unexpected RESP type ${type}`);
  }
}

/** One run of every script; returns what each step answered. */
async function scenario(client: RawClient, tag: string): Promise<Value[]> {
  const key = `resp:{${tag}}`;
  const lock = `${key}:lock`;
  const fence = `${key}:fence`;
  const queue = `${key}:queue`;
  const hb = `${queue}:hb`;
  const grant = `${queue}:grant`;
  const now = 1_700_000_000_000;
  const out: Value[] = [];
  out.push(await client.call("EVAL", SET_SCRIPT, 1, key, '{"a":1}', 60_000, now));
  out.push(await client.call("EVAL", SET_SCRIPT, 1, key, '{"a":2}', 60_000, now + 1));
  const [, version, created] = (await client.call("HMGET", key, "d", "v", "c")) as string[];
  out.push([version ?? null, created ?? null]);
  out.push(
    await client.call("EVAL", CAS_SCRIPT, 1, key, "1", created as string, '{"a":3}', 60_000, now),
  );
  out.push(
    await client.call(
      "EVAL",
      CAS_SCRIPT,
      1,
      key,
      version as string,
      created as string,
      '{"a":3}',
      60_000,
      now,
    ),
  );
  out.push(
    await client.call("EVAL", CAS_SCRIPT, 1, `${key}x`, "", "", '{"new":true}', 60_000, now),
  );
  out.push(await client.call("HGET", key, "d"));
  const mine = randomBytes(20).toString("hex");
  const theirs = randomBytes(20).toString("hex");
  const acquire = (value: string, ticket: string, score: number) =>
    client.call(
      "EVAL",
      ACQUIRE,
      5,
      lock,
      fence,
      queue,
      hb,
      grant,
      value,
      10_000,
      ticket,
      score,
      3000,
      "1",
      "1.000",
      3000,
    );
  const release = (value: string, token: number) =>
    client.call("EVAL", RELEASE, 5, lock, queue, hb, grant, fence, value, "chan", token);
  // The first token comes from the server clock (microseconds): check its range, not its value.
  const first = (await acquire(mine, "", now)) as number[];
  out.push([first[0] as number, Number.isSafeInteger(first[1]) && (first[1] as number) > 1e15]);
  const held = (await acquire("t1", "t1", now)) as number[];
  out.push([held[0] as number, (held[1] as number) > 9000]);
  // A counter above the clock: the next token is counter + 1, the same on both connections.
  out.push(await client.call("EVAL", FENCE, 2, lock, fence, mine, 2 ** 52));
  out.push(await client.call("GET", fence));
  out.push(await client.call("EVAL", EXTEND, 1, lock, mine, 20_000));
  out.push(await client.call("EVAL", EXTEND, 1, lock, theirs, 20_000));
  out.push(await release(theirs, 0));
  out.push(await release(mine, 2 ** 52 + 1));
  out.push(await release(mine, 2 ** 52 + 1));
  // The release handed the lock to the queued ticket "t1", with a token above the releaser's.
  out.push(await client.call("GET", lock));
  out.push(await client.call("GET", fence));
  out.push(((await acquire(mine, "t2", now + 5)) as number[])[0] as number);
  out.push(await release("t1", 2 ** 52 + 2));
  // "t2" is the head now: only it may take the free lock; "t1" is no longer queued.
  out.push(await client.call("GET", lock));
  out.push(((await acquire(theirs, "", now)) as number[])[0] as number);
  return out;
}

describe("Lua scripts under RESP2 and RESP3", () => {
  let node: RedisNode;
  beforeAll(async () => {
    node = await startRedis();
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("answer the same on a RESP3 connection as on a RESP2 one", async () => {
    const resp2 = await RawClient.open(node.port);
    const resp3 = await RawClient.open(node.port);
    try {
      const hello = (await resp3.call("HELLO", 3)) as Record<string, Value>;
      expect(hello.proto).toBe(3);
      const a = await scenario(resp2, "two");
      const b = await scenario(resp3, "three");
      expect(b).toEqual(a);
      // And the answers are the right ones, not merely equal.
      expect(a.slice(0, 2)).toEqual([1, 2]);
      expect(a[3]).toBe(-1);
      expect(a[4]).toBe(3);
      expect(a[5]).toBe(1);
      expect(a[6]).toBe('{"a":3}');
      expect(a[7]).toEqual([1, true]);
      expect(a[8]).toEqual([0, true]);
      expect(a[9]).toBe(1);
      expect(a[10]).toBe(String(2 ** 52));
      expect(a.slice(11, 16)).toEqual([1, 0, 0, 1, 0]);
      expect(a[16]).toBe("t1");
      expect(a[17]).toBe(String(2 ** 52 + 2));
      expect(a[18]).toBe(0);
      expect(a[19]).toBe(1);
      expect(a[20]).toBe("t2");
      expect(a[21]).toBe(0);
    } finally {
      resp2.close();
      resp3.close();
    }
  });
});
