/**
 * Counting the Redis work of a piece of code, from outside the code under test:
 *
 * - **Commands executed**: `INFO commandstats` deltas on a dedicated redis-server (every command
 *   Redis ran, including the ones a Lua script calls), minus the probe's own `INFO` calls.
 * - **Writes and round trips**: a TCP relay between the application and Redis sees every byte.
 *   A *write* is one chunk the application sent (ioredis disables Nagle and writes a pipeline or
 *   a MULTI block in one go). A *round trip* starts with a command sent while no other command
 *   is waiting for its reply (on any connection: the relay counts replies); commands sent while
 *   some are in flight join it. So commands sent together or overlapping (a pipeline,
 *   independent commands issued concurrently) are one round trip, and a command that waits for
 *   another's reply is a second one. Measured on sequential requests with nothing else running,
 *   this is the number of Redis latencies a request costs.
 * - **Commands sent**: the relay also parses the RESP commands the application sends (names,
 *   first key), which tells where each command comes from.
 */
import net from "node:net";
import type { Redis } from "ioredis";

export interface SentCommand {
  /** Upper-case command name (EVALSHA, XADD, ...). */
  name: string;
  /** Its arguments, each cut at 80 characters. */
  args: string[];
  /** Relay connection number (one per ioredis connection). */
  connection: number;
  /** The round trip it was sent in (1-based, within a measurement). */
  trip: number;
}

export interface WorkCounts {
  /** Redis commands executed, by lower-case name (from `INFO commandstats`). */
  executed: Record<string, number>;
  executedTotal: number;
  /** Commands the application sent, in order. */
  sent: SentCommand[];
  writes: number;
  roundTrips: number;
  bytesOut: number;
  bytesIn: number;
}

/** A streaming parser of RESP arrays of bulk strings (what clients send). */
class RespCommands {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): string[][] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out: string[][] = [];
    for (;;) {
      const parsed = this.next();
      if (parsed === undefined) break;
      out.push(parsed.command);
      this.buffer = this.buffer.subarray(parsed.end);
    }
    return out;
  }

  private next(): { command: string[]; end: number } | undefined {
    const buf = this.buffer;
    if (buf.length === 0) return undefined;
    let pos = 0;
    const line = (): string | undefined => {
      const at = buf.indexOf("\r\n", pos);
      if (at < 0) return undefined;
      const text = buf.toString("latin1", pos, at);
      pos = at + 2;
      return text;
    };
    const head = line();
    if (head === undefined) return undefined;
    if (!head.startsWith("*")) {
      // Inline command (never sent by ioredis): one line, split on spaces.
      return { command: head.split(" "), end: pos };
    }
    const count = Number(head.slice(1));
    const command: string[] = [];
    for (let i = 0; i < count; i++) {
      const size = line();
      if (size === undefined) return undefined;
      const length = Number(size.slice(1));
      if (buf.length < pos + length + 2) return undefined;
      command.push(buf.toString("utf8", pos, pos + Math.min(length, 80)));
      pos += length + 2;
    }
    return { command, end: pos };
  }
}

/** Counts complete RESP2 replies in a byte stream (nested arrays count once). */
class RespReplies {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): number {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let count = 0;
    for (;;) {
      const end = this.skip(0);
      if (end === undefined) break;
      count++;
      this.buffer = this.buffer.subarray(end);
    }
    return count;
  }

  /** The offset after the reply at `pos`, or undefined when it is incomplete. */
  private skip(pos: number): number | undefined {
    const buf = this.buffer;
    const at = buf.indexOf("\r\n", pos);
    if (at < 0) return undefined;
    const type = String.fromCharCode(buf[pos] ?? 0);
    const n = Number(buf.toString("latin1", pos + 1, at));
    let next = at + 2;
    if (type === "$") {
      if (n < 0) return next;
      return buf.length < next + n + 2 ? undefined : next + n + 2;
    }
    if (type === "*") {
      for (let i = 0; i < n; i++) {
        const after = this.skip(next);
        if (after === undefined) return undefined;
        next = after;
      }
    }
    return next;
  }
}

/** A TCP relay in front of Redis that counts writes, round trips and the commands sent. */
export class CountingRelay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private connections = 0;
  /** Commands sent and not answered yet, over every connection. */
  private inFlight = 0;
  writes = 0;
  roundTrips = 0;
  bytesOut = 0;
  bytesIn = 0;
  sent: SentCommand[] = [];

  constructor(
    private readonly upstreamHost: string,
    private readonly upstreamPort: number,
  ) {}

  async listen(): Promise<number> {
    const server = net.createServer((client) => this.relay(client));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as net.AddressInfo).port;
  }

  private relay(client: net.Socket): void {
    const connection = ++this.connections;
    const upstream = net.connect(this.upstreamPort, this.upstreamHost);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const parser = new RespCommands();
    const replies = new RespReplies();
    // This connection's commands still waiting for a reply (pub/sub messages are not replies:
    // a subscriber has none pending, so they count for nothing).
    let pending = 0;
    client.on("data", (chunk: Buffer) => {
      this.writes++;
      if (this.inFlight === 0) this.roundTrips++;
      this.bytesOut += chunk.length;
      for (const command of parser.push(chunk)) {
        const [name = "", ...args] = command;
        this.sent.push({ name: name.toUpperCase(), args, connection, trip: this.roundTrips });
        pending++;
        this.inFlight++;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      const answered = Math.min(pending, replies.push(chunk));
      pending -= answered;
      this.inFlight -= answered;
      this.bytesIn += chunk.length;
      client.write(chunk);
    });
    const close = () => {
      this.inFlight -= pending;
      pending = 0;
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("close", close);
    upstream.on("close", close);
    client.on("error", close);
    upstream.on("error", close);
  }

  reset(): void {
    this.writes = 0;
    this.roundTrips = 0;
    this.bytesOut = 0;
    this.bytesIn = 0;
    this.sent = [];
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** `INFO commandstats` as calls by lower-case command name (`cmdstat_xadd:calls=3,...`). */
export async function commandStats(redis: Redis): Promise<Record<string, number>> {
  const text = await redis.info("commandstats");
  const out: Record<string, number> = {};
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    out[match[1] as string] = Number(match[2]);
  }
  return out;
}

/** `after - before`, without the probe's own INFO calls (one per snapshot). */
export function commandDelta(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, calls] of Object.entries(after)) {
    const delta = calls - (before[name] ?? 0) - (name === "info" ? 1 : 0);
    if (delta > 0) out[name] = delta;
  }
  return out;
}

/**
 * Runs `work` with the relay and commandstats around it. `settleMs` lets background writes
 * that follow a response (fire-and-forget TTL slides, stream trims) land in the same sample.
 */
export async function measureWork(
  relay: CountingRelay,
  stats: Redis,
  work: () => Promise<void>,
  settleMs = 30,
): Promise<WorkCounts> {
  const before = await commandStats(stats);
  relay.reset();
  await work();
  if (settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));
  const counts = {
    // A copy: the relay keeps appending to its list until the next reset.
    sent: [...relay.sent],
    writes: relay.writes,
    roundTrips: relay.roundTrips,
    bytesOut: relay.bytesOut,
    bytesIn: relay.bytesIn,
  };
  const after = await commandStats(stats);
  const executed = commandDelta(before, after);
  const executedTotal = Object.values(executed).reduce((sum, n) => sum + n, 0);
  return { executed, executedTotal, ...counts };
}

/** CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`. */
export async function processCpuSeconds(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}

/** `used_cpu_user + used_cpu_sys` of `INFO cpu`, seconds. */
export async function redisCpuSeconds(redis: Redis): Promise<number> {
  const text = await redis.info("cpu");
  const user = Number(/used_cpu_user:([\d.]+)/.exec(text)?.[1] ?? Number.NaN);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(text)?.[1] ?? Number.NaN);
  return user + sys;
}
