/**
 * Test harness: runs real `redis-server` processes (standalone, independent masters, Cluster,
 * Sentinel) on free ports, each with its own temporary `--dir` and log file.
 *
 * Never touches the Redis on 127.0.0.1:6379: ports come from the OS, and a node counts as ready
 * only when PING answers and `INFO server` reports the pid of the process we spawned.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const HOST = "127.0.0.1";
const DEFAULT_READY_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 50;
const STOP_GRACE_MS = 2_000;
const RESTART_RETRY_MS = 5_000;
const START_ATTEMPTS = 5;
const RESERVED_PORT = 6379;

export interface RedisNode {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  /** Pid of the running process, `undefined` while it is down. */
  readonly pid: number | undefined;
  /** SIGKILL the process (simulates a crash), resolves when it has exited. Idempotent. */
  kill(): Promise<void>;
  /** Start again on the same port with the same args; resolves when PING answers. */
  restart(): Promise<void>;
  /** Graceful stop (SIGTERM then SIGKILL after 2 s) for teardown. Idempotent. */
  stop(): Promise<void>;
}

export interface RedisClusterHandle {
  readonly nodes: RedisNode[];
  readonly seeds: Array<{ host: string; port: number }>;
  stop(): Promise<void>;
}

export interface SentinelHandle {
  readonly master: RedisNode;
  readonly replica: RedisNode;
  readonly sentinels: RedisNode[];
  readonly masterName: string;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Binaries and process bookkeeping

function findBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/bin", "/usr/local/bin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here, try the next directory
    }
  }
  throw new Error(
    `${name} not found on PATH: the Redis test suites need a real ${name} ` +
      "(install it, e.g. `apt-get install redis-server`).",
  );
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // No redis-server (nor its temp dir) may outlive the test worker, even when a suite forgets
  // to stop it.
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
}

function track(child: ChildProcess): void {
  installExitHook();
  live.add(child);
  child.once("exit", () => live.delete(child));
}

const handedOut = new Set<number>();

/** A free TCP port on 127.0.0.1, chosen by the OS; never the same one twice per process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.unref();
      server.once("error", reject);
      server.listen(0, HOST, () => {
        const address = server.address();
        const p = typeof address === "object" && address ? address.port : 0;
        server.close(() => resolve(p));
      });
    });
    if (port > 0 && port !== RESERVED_PORT && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("freePort: the OS kept returning ports already handed out");
}

// ---------------------------------------------------------------------------------------------
// Minimal RESP client over a raw socket (readiness checks must not depend on the code under test)

type RespValue = string | number | null | RespError | RespValue[];

class RespError extends Error {}

function encodeCommand(args: string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  return Buffer.from(parts.join(""));
}

/** Parses one reply at `offset`; `undefined` when the buffer does not hold all of it yet. */
function parseReply(buf: Buffer, offset: number): { value: RespValue; next: number } | undefined {
  const eol = buf.indexOf("\r\n", offset);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[offset] ?? 0);
  const line = buf.toString("utf8", offset + 1, eol);
  const next = eol + 2;
  switch (type) {
    case "+":
      return { value: line, next };
    case "-":
      return { value: new RespError(line), next };
    case ":":
      return { value: Number(line), next };
    case "$": {
      const len = Number(line);
      if (len < 0) return { value: null, next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.toString("utf8", next, next + len), next: next + len + 2 };
    }
    case "*": {
      const count = Number(line);
      if (count < 0) return { value: null, next };
      const items: RespValue[] = [];
      let pos = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, pos);
        if (!item) return undefined;
        items.push(item.value);
        pos = item.next;
      }
      return { value: items, next: pos };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

function sendCommand(port: number, args: string[], timeoutMs = 1_000): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const socket = net.createConnection({ host: HOST, port });
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`${args[0]} on port ${port} timed out after ${timeoutMs} ms`));
    });
    socket.once("error", reject);
    socket.once("connect", () => socket.write(encodeCommand(args)));
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        const reply = parseReply(buf, 0);
        if (!reply) return;
        socket.destroy();
        if (reply.value instanceof RespError) reject(reply.value);
        else resolve(reply.value);
      } catch (err) {
        socket.destroy();
        reject(err);
      }
    });
    socket.once("close", () => reject(new Error(`connection to port ${port} closed`)));
  });
}

async function sendText(port: number, args: string[]): Promise<string> {
  const value = await sendCommand(port, args);
  if (typeof value !== "string") throw new Error(`${args.join(" ")}: expected a string reply`);
  return value;
}

/** `INFO`-style `key:value` lines (also CLUSTER INFO) to a lookup. */
function infoField(text: string, key: string): string | undefined {
  const match = new RegExp(`^${key}:(.*)$`, "m").exec(text);
  return match?.[1]?.trim();
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function pollUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  describe: () => string = () => "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`${what} not reached within ${timeoutMs} ms${cause}${describe()}`);
    }
    await delay(POLL_INTERVAL_MS);
  }
}

/** Polls PING on 127.0.0.1:`port` until it answers PONG; throws after `timeoutMs`. */
export async function waitForPing(
  port: number,
  timeoutMs = DEFAULT_READY_TIMEOUT_MS,
): Promise<void> {
  await pollUntil(
    `PONG from port ${port}`,
    timeoutMs,
    async () => (await sendCommand(port, ["PING"])) === "PONG",
  );
}

// ---------------------------------------------------------------------------------------------
// One redis-server process

class StartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
  }
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

interface NodeSpec {
  port: number;
  args: string[];
  /** Written into the node's dir and passed as the first argument (sentinel needs a file). */
  conf?: string;
  sentinel?: boolean;
}

class ManagedRedis implements RedisNode {
  readonly host = HOST;
  readonly port: number;
  readonly url: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private dir: string | undefined;

  constructor(private readonly spec: NodeSpec) {
    this.port = spec.port;
    this.url = `redis://${HOST}:${spec.port}`;
  }

  get pid(): number | undefined {
    const child = this.child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  get logFile(): string {
    return path.join(this.ensureDir(), "redis.log");
  }

  /** Starts the process; retries binding the same port for `retryInUseMs` if it is busy. */
  async start(retryInUseMs: number): Promise<void> {
    const deadline = Date.now() + retryInUseMs;
    for (;;) {
      try {
        await this.spawnOnce();
        return;
      } catch (err) {
        if (!(err instanceof StartError && err.addressInUse) || Date.now() >= deadline) throw err;
        await delay(200);
      }
    }
  }

  kill(): Promise<void> {
    return this.signal("SIGKILL");
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start(RESTART_RETRY_MS);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await this.signal("SIGTERM");
      clearTimeout(timer);
    }
    await this.exited;
    if (this.dir) {
      rmSync(this.dir, { recursive: true, force: true });
      dirs.delete(this.dir);
      this.dir = undefined;
    }
  }

  /** Sends `sig` and waits for the exit, holding the event loop open until then. */
  private signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      // The child is unref'd while it runs; without this, a script awaiting the exit could end.
      child.ref();
      child.kill(sig);
    }
    return this.exited;
  }

  private ensureDir(): string {
    if (this.dir === undefined) {
      installExitHook();
      this.dir = mkdtempSync(path.join(os.tmpdir(), `mcp-session-store-redis-${this.port}-`));
      dirs.add(this.dir);
    }
    return this.dir;
  }

  private async spawnOnce(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      throw new Error(`redis on port ${this.port} is already running (pid ${this.child.pid})`);
    }
    const bin = findBinary("redis-server");
    const dir = this.ensureDir();
    const argv: string[] = [];
    if (this.spec.conf !== undefined) {
      const confFile = path.join(dir, "redis.conf");
      // Sentinel rewrites its config at runtime; a restart continues from the rewritten file.
      if (!existsSync(confFile)) await writeFile(confFile, this.spec.conf);
      argv.push(confFile);
      if (this.spec.sentinel) argv.push("--sentinel");
    }
    argv.push(
      ...["--port", String(this.port), "--bind", HOST, "--save", "", "--appendonly", "no"],
      ...["--daemonize", "no", "--protected-mode", "no", "--dir", dir],
      // Redis 7 waits 5 s for more replicas before a diskless full sync; tests have no time for that.
      ...["--repl-diskless-sync-delay", "0"],
      ...this.spec.args,
    );
    // stdout/stderr go to the log file, so also config errors printed before logging starts.
    const logFile = path.join(dir, "redis.log");
    const fd = openSync(logFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(bin, argv, { stdio: ["ignore", fd, fd], cwd: dir });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    track(child);
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
    child.once("error", () => {
      // Reported by waitReady through the exit/error state; the listener keeps it from throwing.
    });
    // An unref'd child does not hold the test worker open; the exit hook above still kills it.
    child.unref();
    await this.waitReady(child, logFile);
  }

  private async waitReady(child: ChildProcess, logFile: string): Promise<void> {
    const deadline = Date.now() + DEFAULT_READY_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
        const log = tail(logFile);
        throw new StartError(
          `redis-server on port ${this.port} exited before it was ready ` +
            `(code ${child.exitCode}, signal ${child.signalCode}). Log tail:\n${log}`,
          /Address already in use/i.test(log),
        );
      }
      try {
        if ((await sendCommand(this.port, ["PING"])) === "PONG") {
          // Prove the answer came from our process, not from another server on that port.
          const info = await sendText(this.port, ["INFO", "server"]);
          if (Number(infoField(info, "process_id")) === child.pid) return;
        }
      } catch {
        // not listening yet, or still loading
      }
      if (Date.now() >= deadline) {
        await this.signal("SIGKILL");
        throw new Error(
          `redis-server on port ${this.port} did not answer PING within ` +
            `${DEFAULT_READY_TIMEOUT_MS} ms. Log tail:\n${tail(logFile)}`,
        );
      }
      await delay(POLL_INTERVAL_MS);
    }
  }
}

/** Starts a node; without a fixed port, a port that turns out busy is replaced by a new one. */
async function launch(
  port: number | undefined,
  makeSpec: (port: number) => Promise<Omit<NodeSpec, "port">>,
): Promise<ManagedRedis> {
  if (port === RESERVED_PORT) {
    throw new Error(`port ${RESERVED_PORT} belongs to the developer's Redis; tests never use it`);
  }
  if (port !== undefined) {
    const node = new ManagedRedis({ port, ...(await makeSpec(port)) });
    await startOrClean(node, RESTART_RETRY_MS);
    return node;
  }
  for (let attempt = 1; ; attempt++) {
    const p = await freePort();
    const node = new ManagedRedis({ port: p, ...(await makeSpec(p)) });
    try {
      await startOrClean(node, 0);
      return node;
    } catch (err) {
      if (!(err instanceof StartError && err.addressInUse) || attempt >= START_ATTEMPTS) throw err;
    }
  }
}

async function startOrClean(node: ManagedRedis, retryInUseMs: number): Promise<void> {
  try {
    await node.start(retryInUseMs);
  } catch (err) {
    await node.stop();
    throw err;
  }
}

async function stopAll(nodes: RedisNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.stop()));
}

/** Starts every node in parallel; if one fails, stops the others before rethrowing. */
async function launchAll(starts: Array<() => Promise<RedisNode>>): Promise<RedisNode[]> {
  const results = await Promise.allSettled(starts.map((s) => s()));
  const nodes = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failure = results.find((r) => r.status === "rejected");
  if (failure) {
    await stopAll(nodes);
    throw failure.reason;
  }
  return nodes;
}

// ---------------------------------------------------------------------------------------------
// Public starters

/** One standalone redis-server on a free port (or `options.port`), ready when it returns. */
export async function startRedis(
  options: { port?: number; args?: string[] } = {},
): Promise<RedisNode> {
  const args = options.args ?? [];
  return launch(options.port, async () => ({ args }));
}

/** `count` independent masters (no replication between them), as Redlock needs. */
export function startRedisNodes(
  count: number,
  options: { args?: string[] } = {},
): Promise<RedisNode[]> {
  return launchAll(Array.from({ length: count }, () => () => startRedis(options)));
}

function runRedisCli(args: string[], timeoutMs: number): Promise<string> {
  const bin = findBinary("redis-cli");
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err)
        reject(new Error(`redis-cli ${args.join(" ")} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

async function waitReplicaLinked(replica: RedisNode, timeoutMs: number): Promise<void> {
  await pollUntil(`replication link of port ${replica.port}`, timeoutMs, async () => {
    const info = await sendText(replica.port, ["INFO", "replication"]);
    return infoField(info, "master_link_status") === "up";
  });
}

/**
 * A Redis Cluster of `masters` masters with `replicasPerMaster` replicas each (default 3 + 3).
 * Returns when every node reports `cluster_state:ok`, knows every other node, and every replica
 * has synced from its master (a replica that never synced refuses to fail over).
 */
export async function startRedisCluster(
  options: { masters?: number; replicasPerMaster?: number } = {},
): Promise<RedisClusterHandle> {
  const masters = options.masters ?? 3;
  const replicasPerMaster = options.replicasPerMaster ?? 1;
  const total = masters * (1 + replicasPerMaster);
  const nodes = await launchAll(
    Array.from(
      { length: total },
      () => () =>
        launch(undefined, async () => ({
          args: [
            ...["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
            ...["--cluster-node-timeout", "2000"],
            // An explicit bus port: port + 10000 may be taken or beyond 65535 for high free ports.
            ...["--cluster-port", String(await freePort())],
          ],
        })),
    ),
  );
  const handle: RedisClusterHandle = {
    nodes,
    seeds: nodes.map((n) => ({ host: n.host, port: n.port })),
    stop: () => stopAll(nodes),
  };
  try {
    await runRedisCli(
      [
        "--cluster",
        "create",
        ...nodes.map((n) => `${n.host}:${n.port}`),
        "--cluster-replicas",
        String(replicasPerMaster),
        "--cluster-yes",
      ],
      60_000,
    );
    await Promise.all(
      nodes.map((n) =>
        pollUntil(`cluster_state:ok on port ${n.port}`, 30_000, async () => {
          const info = await sendText(n.port, ["CLUSTER", "INFO"]);
          return (
            infoField(info, "cluster_state") === "ok" &&
            Number(infoField(info, "cluster_known_nodes")) === total
          );
        }),
      ),
    );
    const roles = await Promise.all(
      nodes.map(async (n) => infoField(await sendText(n.port, ["INFO", "replication"]), "role")),
    );
    await Promise.all(
      nodes.filter((_, i) => roles[i] === "slave").map((n) => waitReplicaLinked(n, 30_000)),
    );
  } catch (err) {
    await handle.stop();
    const logs = nodes.map((n) => `--- port ${n.port}\n${tail((n as ManagedRedis).logFile, 10)}`);
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${logs.join("\n")}`);
  }
  return handle;
}

/**
 * One master, one replica and one Sentinel (quorum 1) watching them as "mymaster". Returns when
 * the replica has synced and the Sentinel has discovered it, so a failover can pick it.
 */
export async function startRedisSentinel(): Promise<SentinelHandle> {
  const masterName = "mymaster";
  const started: RedisNode[] = [];
  try {
    const master = await startRedis();
    started.push(master);
    const replica = await startRedis({ args: ["--replicaof", HOST, String(master.port)] });
    started.push(replica);
    await waitReplicaLinked(replica, DEFAULT_READY_TIMEOUT_MS);
    const sentinel = await launch(undefined, async (port) => ({
      args: [],
      sentinel: true,
      conf: [
        `port ${port}`,
        `sentinel monitor ${masterName} ${HOST} ${master.port} 1`,
        `sentinel down-after-milliseconds ${masterName} 1000`,
        `sentinel failover-timeout ${masterName} 3000`,
        "",
      ].join("\n"),
    }));
    started.push(sentinel);
    await pollUntil(`sentinel ${sentinel.port} discovering the replica`, 30_000, async () => {
      const reply = await sendCommand(sentinel.port, ["SENTINEL", "REPLICAS", masterName]);
      return Array.isArray(reply) && reply.length >= 1;
    });
    const sentinels = [sentinel];
    return {
      master,
      replica,
      sentinels,
      masterName,
      stop: async () => {
        await stopAll(sentinels);
        await stopAll([replica, master]);
      },
    };
  } catch (err) {
    await stopAll(started.reverse());
    throw err;
  }
}
