/**
 * Redis work per MCP request, and the capacity figures one sizes a Redis for.
 *
 * 1. Per request kind, on sequential requests (one at a time, nothing else running): Redis
 *    commands executed (`INFO commandstats` deltas on a dedicated redis-server, script-internal
 *    calls included, the probe's own INFO calls excluded), commands sent, writes and round trips
 *    (a counting TCP relay between the servers and Redis: see bench/redis-work-probe.ts), and
 *    the commands sent, in order, grouped by round trip. Medians over BENCH_SAMPLES requests.
 *    Kinds: the reference server (2025-era sessions with resumability, its default; 2026-07-28
 *    with Redis services), a 2025-era session adopted by a second instance, and the 2025-era
 *    handler in process with `enableJsonResponse: true` (plain JSON), resumability off and on.
 * 2. The event stream of one session after 150 tool calls (`XLEN`, `MEMORY USAGE`).
 * 3. Memory per idle session: `MEMORY USAGE` of a session's keys after initialize and after a
 *    few calls, and `used_memory` growth over many sessions; extrapolated to 1M sessions.
 * 4. Redis CPU per request: redis-server's `used_cpu_user + used_cpu_sys` (`INFO cpu`) during a fixed
 *    autocannon load of tool calls on the reference server (direct to Redis, no relay), minus
 *    its idle CPU; requests/s one Redis core carries = 1 / CPU seconds per request.
 *
 *   node --import tsx bench/mcp-redis-work.ts   # BENCH_SAMPLES=25 BENCH_DURATION=6 BENCH_ROUNDS=3 BENCH_CONNECTIONS=8
 *
 * Writes bench/results/<YYYY-MM-DD>/mcp-redis-work-<HHMM>.{json,md}.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import autocannon from "autocannon";
import { Redis } from "ioredis";
import {
  createMcpHttpHandler,
  type McpServices,
  registerRedisBackedServices,
} from "../src/mcp/index.js";
import { buildServer as buildFixtureServer } from "../test/fixtures/mcp-server.js";
import { startRedis } from "../test/support/redis.js";
import { type ServerProcess, startServer } from "../test/support/server.js";
import { knob } from "./quick.js";
import {
  deleteSession,
  initialize,
  initialized,
  legacyCall,
  legacyLoadRequests,
  MODERN_VERSION,
  modernCall,
  modernLoadRequests,
} from "./redis-work-mcp.js";
import {
  CountingRelay,
  measureWork,
  processCpuSeconds,
  redisCpuSeconds,
  type WorkCounts,
} from "./redis-work-probe.js";

const SAMPLES = knob("BENCH_SAMPLES", 25, 8);
const DURATION = knob("BENCH_DURATION", 6, 3);
const LOAD_ROUNDS = knob("BENCH_ROUNDS", 3, 1);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const STREAM_CALLS = 150;
const MEMORY_SESSIONS = knob("BENCH_MEMORY_SESSIONS", 300, 100);
const STATE_KEY = { REQUEST_STATE_KEY: "redis-work-request-state-key-0123456789abcdef" };

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

interface KindResult {
  kind: string;
  path: string;
  executed: number;
  sent: number;
  writes: number;
  roundTrips: number;
  /** Fewest and most round trips over the samples (commands sent apart may or may not overlap). */
  roundTripsRange: [number, number];
  /** Median count per command name executed (commandstats). */
  executedByName: Record<string, number>;
  /** The commands sent by the sample closest to the medians, by round trip. */
  example: string[];
  samples: number;
}

function describeSent(work: WorkCounts): string[] {
  const trips = new Map<number, string[]>();
  for (const command of work.sent) {
    const list = trips.get(command.trip) ?? [];
    const key =
      command.name === "EVALSHA" || command.name === "EVAL" ? "" : (command.args[0] ?? "");
    const shown = key.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "<id>").slice(0, 60);
    list.push(`${command.name}${shown ? ` ${shown}` : ""} (c${command.connection})`);
    trips.set(command.trip, list);
  }
  return [...trips.entries()].map(([trip, list]) => `RT${trip}: ${list.join(", ")}`);
}

async function sampleKind(
  kind: string,
  where: string,
  relay: CountingRelay,
  stats: Redis,
  prepare: () => Promise<() => Promise<void>>,
): Promise<KindResult> {
  const works: WorkCounts[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const work = await prepare();
    // The previous request's fire-and-forget writes land before the sample starts.
    await new Promise((resolve) => setTimeout(resolve, 250));
    works.push(await measureWork(relay, stats, work, 40));
  }
  const executed = median(works.map((w) => w.executedTotal));
  const roundTrips = median(works.map((w) => w.roundTrips));
  const names = new Set(works.flatMap((w) => Object.keys(w.executed)));
  const executedByName: Record<string, number> = {};
  for (const name of [...names].sort()) {
    const m = median(works.map((w) => w.executed[name] ?? 0));
    if (m > 0) executedByName[name] = m;
  }
  const distance = (w: WorkCounts) =>
    Math.abs(w.executedTotal - executed) + Math.abs(w.roundTrips - roundTrips);
  const example = works.reduce((best, w) => (distance(w) < distance(best) ? w : best));
  const result: KindResult = {
    kind,
    path: where,
    executed,
    sent: median(works.map((w) => w.sent.length)),
    writes: median(works.map((w) => w.writes)),
    roundTrips,
    roundTripsRange: [
      Math.min(...works.map((w) => w.roundTrips)),
      Math.max(...works.map((w) => w.roundTrips)),
    ],
    executedByName,
    example: describeSent(example),
    samples: works.length,
  };
  console.log(
    `${kind}: ${executed} commands executed, ${result.sent} sent, ${roundTrips} round trips, ${result.writes} writes ${JSON.stringify(executedByName)}\n  ${result.example.join("\n  ")}`,
  );
  return result;
}

/** Keys whose name holds `sessionId`, with their type and MEMORY USAGE (SAMPLES 0). */
async function sessionKeys(
  stats: Redis,
  sessionId: string,
): Promise<Array<{ key: string; type: string; bytes: number; length?: number }>> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await stats.scan(cursor, "MATCH", `*${sessionId}*`, "COUNT", 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  const out = [];
  for (const key of keys.sort()) {
    const type = await stats.type(key);
    const bytes = Number(await stats.call("MEMORY", "USAGE", key, "SAMPLES", "0"));
    const length = type === "stream" ? await stats.xlen(key) : undefined;
    out.push({ key: key.replace(sessionId, "<id>"), type, bytes, length });
  }
  return out;
}

async function usedMemory(stats: Redis): Promise<number> {
  const text = await stats.info("memory");
  return Number(/used_memory:(\d+)/.exec(text)?.[1]);
}

/** The 2025-era handler in this process with plain JSON responses, with or without the event store. */
async function startPlainJson(
  redisUrl: string,
  resumability: boolean,
): Promise<{ url: string; close(): Promise<void> }> {
  const services: McpServices = await registerRedisBackedServices(null, {
    redisUrl,
    prefix: resumability ? "json-r:" : "json:",
    fallback: "error",
  });
  const handler = createMcpHttpHandler({
    services,
    createServer: () => buildFixtureServer("json", services),
    resumability,
    transportOptions: { enableJsonResponse: true },
  });
  const server = http.createServer((req, res) => void handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await handler.close();
      await services.close();
    },
  };
}

interface LoadResult {
  load: string;
  requests: number;
  requestsPerSec: number;
  redisCpuSeconds: number;
  redisCpuUsPerRequest: number;
  requestsPerRedisCoreSecond: number;
  serverCpuUsPerRequest: number;
  errors: number;
}

async function load(
  name: string,
  url: string,
  stats: Redis,
  server: ServerProcess,
  idleCpuPerSecond: number,
  requests: autocannon.Request[],
): Promise<LoadResult> {
  const redisBefore = await redisCpuSeconds(stats);
  const serverBefore = await processCpuSeconds(server.pid);
  const started = process.hrtime.bigint();
  let rpcErrors = 0;
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: DURATION,
    timeout: 10,
    requests: requests.map(
      (r): autocannon.Request => ({
        ...r,
        onResponse: (_status: number, body: string) => {
          if (body.includes('"error":') || body.includes('"isError":true')) rpcErrors++;
        },
      }),
    ),
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const redisCpu = (await redisCpuSeconds(stats)) - redisBefore - idleCpuPerSecond * seconds;
  const serverCpu = (await processCpuSeconds(server.pid)) - serverBefore;
  const total = result.requests.total;
  const out: LoadResult = {
    load: name,
    requests: total,
    requestsPerSec: result.requests.average,
    redisCpuSeconds: redisCpu,
    redisCpuUsPerRequest: (redisCpu / total) * 1e6,
    requestsPerRedisCoreSecond: total / redisCpu,
    serverCpuUsPerRequest: (serverCpu / total) * 1e6,
    errors: result.errors + result.timeouts + result.non2xx + rpcErrors,
  };
  console.log(`load ${name}: ${JSON.stringify(out)}`);
  return out;
}

function gitCommit(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

/** What the measurements run against. */
interface Setup {
  relay: CountingRelay;
  /** A connection straight to Redis, for INFO and MEMORY USAGE. */
  stats: Redis;
  /** Reference servers through the relay: A and B share sessions, C has the conformance tools. */
  A: string;
  B: string;
  C: string;
  /** In process, plain JSON: P without the event store, R with it. */
  P: string;
  R: string;
  /** The reference server straight to Redis, for the memory and load runs. */
  direct: ServerProcess;
  listeners: Client[];
}

/** Every path once (script loading, connections, JIT); returns a session on P and one on R. */
async function warmUp({ A, B, P, R }: Setup): Promise<{ pid: string; rid: string }> {
  for (const url of [A, B]) {
    const id = await initialize(url);
    await initialized(url, id);
    await legacyCall(url, id, "notes_put", { key: "k", value: "v" });
    await legacyCall(url, id, "notes_get", { key: "k" });
    await legacyCall(url, id, "slow_task", { steps: 1, stepMs: 0 });
    const nb = await modernCall(url, "notes_put", { key: "k", value: "v" });
    await modernCall(url, "notes_get", {
      notebook: (nb.structuredContent as { notebook: string }).notebook,
      key: "k",
    });
    await deleteSession(url, id);
  }
  const pid = await initialize(P);
  await initialized(P, pid);
  await legacyCall(P, pid, "echo", { text: "x" });
  const rid = await initialize(R);
  await initialized(R, rid);
  await legacyCall(R, rid, "echo", { text: "x" });

  return { pid, rid };
}

/** Commands and round trips of each request kind. */
async function countKinds(setup: Setup, pid: string, rid: string): Promise<KindResult[]> {
  const kinds: KindResult[] = [];
  const kind: Kind = (name, where, prepare) =>
    sampleKind(name, where, setup.relay, setup.stats, prepare).then((r) => {
      kinds.push(r);
    });
  await countLegacyKinds(setup, kind, pid, rid);
  await countModernKinds(setup, kind);
  return kinds;
}

/** Samples one request kind: `prepare` sets a request up and returns the request. */
type Kind = (
  name: string,
  where: string,
  prepare: () => Promise<() => Promise<void>>,
) => Promise<void>;

/** 2025-era sessions: the reference server (SSE, resumable) and plain JSON in process. */
async function countLegacyKinds(
  { A, B, P, R }: Setup,
  kind: Kind,
  pid: string,
  rid: string,
): Promise<void> {
  // 2025-era sessions on the reference server (resumability on: SSE responses, event store).
  const known = await initialize(A);
  await initialized(A, known);
  await legacyCall(A, known, "notes_put", { key: "k", value: "x".repeat(64) });
  await kind("initialize", "reference server, 2025-11-25", async () => async () => {
    await initialize(A);
  });
  await kind("notifications/initialized", "reference server, 2025-11-25", async () => {
    const id = await initialize(A);
    return async () => initialized(A, id);
  });
  await kind(
    "tools/call notes_get, known session (SSE, resumable)",
    "reference server, 2025-11-25",
    async () => async () => {
      await legacyCall(A, known, "notes_get", { key: "k" });
    },
  );
  await kind(
    "tools/call slow_task (no tool I/O), known session (SSE, resumable)",
    "reference server, 2025-11-25",
    async () => async () => {
      await legacyCall(A, known, "slow_task", { steps: 1, stepMs: 0 });
    },
  );
  await kind(
    "tools/call notes_get, session adopted from another instance (first call there)",
    "reference server, 2025-11-25",
    async () => {
      const id = await initialize(A);
      await initialized(A, id);
      return async () => {
        await legacyCall(B, id, "notes_get", { key: "k" });
      };
    },
  );
  await kind("DELETE", "reference server, 2025-11-25", async () => {
    const id = await initialize(A);
    await initialized(A, id);
    return async () => deleteSession(A, id);
  });
  // The same handler with plain JSON responses and no event store.
  await kind(
    "tools/call echo (no tool I/O), known session (plain JSON, resumability off)",
    "createMcpHttpHandler in process",
    async () => async () => {
      await legacyCall(P, pid, "echo", { text: "x" });
    },
  );
  await kind(
    "tools/call echo (no tool I/O), known session (plain JSON, resumability on)",
    "createMcpHttpHandler in process",
    async () => async () => {
      await legacyCall(R, rid, "echo", { text: "x" });
    },
  );
}

/** 2026-07-28 on the reference server (Redis services): tool calls, a listen event. */
async function countModernKinds({ A, C, listeners }: Setup, kind: Kind): Promise<void> {
  const notebook = (
    (await modernCall(A, "notes_put", { key: "k", value: "x".repeat(64) })).structuredContent as {
      notebook: string;
    }
  ).notebook;
  await kind(
    "tools/call notes_get with a notebook handle",
    "reference server, 2026-07-28",
    async () => async () => {
      await modernCall(A, "notes_get", { notebook, key: "k" });
    },
  );
  await kind(
    "tools/call slow_task (no tool I/O)",
    "reference server, 2026-07-28",
    async () => async () => {
      await modernCall(A, "slow_task", { steps: 1, stepMs: 0 });
    },
  );
  // subscriptions/listen: one stream open on the conformance profile's server, the change
  // raised by a tool call there; counted: the call that publishes, and the delivery.
  let changed = 0;
  const listener = new Client(
    { name: "redis-work-listen", version: "1.0.0" },
    { versionNegotiation: { mode: { pin: MODERN_VERSION } } as never },
  );
  await listener.connect(new StreamableHTTPClientTransport(new URL(C)));
  listeners.push(listener);
  listener.setNotificationHandler("notifications/tools/list_changed", () => {
    changed += 1;
  });
  const subscription = await listener.listen({ toolsListChanged: true });
  await modernCall(C, "test_trigger_tool_change", {});
  await waitFor(() => changed >= 1);
  await kind(
    "subscriptions/listen: tools/call raising tools/list_changed, delivered to 1 open stream",
    "reference server, 2026-07-28 (conformance profile)",
    async () => {
      const target = changed + 1;
      return async () => {
        await modernCall(C, "test_trigger_tool_change", {});
        await waitFor(() => changed >= target);
      };
    },
  );
  await subscription.close();
  await kind(
    "tools/call raising tools/list_changed, no stream open",
    "reference server, 2026-07-28 (conformance profile)",
    async () => async () => {
      await modernCall(C, "test_trigger_tool_change", {});
    },
  );
}

/** A session's keys after initialize, 3 and 150 calls; used_memory over many sessions. */
async function measureMemory({ stats, A, P, direct }: Setup) {
  // The event stream of one session after 150 calls.
  const streamed = await initialize(A);
  await initialized(A, streamed);
  await legacyCall(A, streamed, "notes_put", { key: "k", value: "x".repeat(64) });
  for (let i = 0; i < STREAM_CALLS - 1; i++) {
    await legacyCall(A, streamed, "notes_get", { key: "k" });
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  const afterCalls = await sessionKeys(stats, streamed);
  console.log(`keys after ${STREAM_CALLS} calls: ${JSON.stringify(afterCalls)}`);

  // Memory per idle session.
  const fresh = await initialize(A);
  await initialized(A, fresh);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const afterInit = await sessionKeys(stats, fresh);
  await legacyCall(A, fresh, "notes_put", { key: "k", value: "x".repeat(64) });
  await legacyCall(A, fresh, "notes_get", { key: "k" });
  await legacyCall(A, fresh, "notes_get", { key: "k" });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const afterThree = await sessionKeys(stats, fresh);
  const plainId = await initialize(P);
  await initialized(P, plainId);
  for (let i = 0; i < 3; i++) await legacyCall(P, plainId, "echo", { text: "x".repeat(64) });
  const plainKeys = await sessionKeys(stats, plainId);
  console.log(`keys after initialize: ${JSON.stringify(afterInit)}`);
  console.log(`keys after 3 calls: ${JSON.stringify(afterThree)}`);
  const memBefore = await usedMemory(stats);
  const keysBefore = await stats.dbsize();
  const grown: string[] = [];
  for (let i = 0; i < MEMORY_SESSIONS; i++) {
    const id = await initialize(direct.mcpUrl);
    await initialized(direct.mcpUrl, id);
    grown.push(id);
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  const memInit = await usedMemory(stats);
  const keysInit = await stats.dbsize();
  for (const id of grown) {
    await legacyCall(direct.mcpUrl, id, "notes_put", { key: "k", value: "x".repeat(64) });
    await legacyCall(direct.mcpUrl, id, "notes_get", { key: "k" });
    await legacyCall(direct.mcpUrl, id, "notes_get", { key: "k" });
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  const memThree = await usedMemory(stats);
  const memory = {
    sessions: MEMORY_SESSIONS,
    keysPerSessionAfterInitialize: (keysInit - keysBefore) / MEMORY_SESSIONS,
    usedMemoryPerSessionAfterInitialize: (memInit - memBefore) / MEMORY_SESSIONS,
    usedMemoryPerSessionAfter3Calls: (memThree - memBefore) / MEMORY_SESSIONS,
    keysOfOneSessionAfterInitialize: afterInit,
    keysOfOneSessionAfter3Calls: afterThree,
    keysOfOneSessionAfter150Calls: afterCalls,
    keysOfOnePlainJsonSessionAfter3Calls: plainKeys,
  };
  console.log(`memory: ${JSON.stringify(memory)}`);

  return { memory, grown };
}

/** Redis CPU per request under a fixed autocannon load (direct to Redis, no relay). */
async function measureLoads({ stats, direct }: Setup, grown: string[]) {
  // Redis CPU per request under a fixed load (direct to Redis, no relay).
  const idleStart = await redisCpuSeconds(stats);
  const idleFrom = process.hrtime.bigint();
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const idleCpuPerSecond =
    ((await redisCpuSeconds(stats)) - idleStart) /
    (Number(process.hrtime.bigint() - idleFrom) / 1e9);
  const pool = grown.slice(0, CONNECTIONS);
  const loadNotebook = (
    (await modernCall(direct.mcpUrl, "notes_put", { key: "k", value: "x".repeat(64) }))
      .structuredContent as { notebook: string }
  ).notebook;
  const legacyLoad = legacyLoadRequests(pool);
  const modernLoad = modernLoadRequests(loadNotebook);
  const loads: LoadResult[] = [];
  for (let round = 0; round < LOAD_ROUNDS; round++) {
    loads.push(
      await load(
        "2025-11-25 tools/call notes_get, known sessions (SSE, resumable)",
        direct.mcpUrl,
        stats,
        direct,
        idleCpuPerSecond,
        legacyLoad,
      ),
    );
    loads.push(
      await load(
        "2026-07-28 tools/call notes_get with a handle",
        direct.mcpUrl,
        stats,
        direct,
        idleCpuPerSecond,
        modernLoad,
      ),
    );
  }
  const loadRows = [...new Set(loads.map((l) => l.load))].map((name) => {
    const list = loads.filter((l) => l.load === name);
    return {
      load: name,
      requestsPerSec: median(list.map((l) => l.requestsPerSec)),
      redisCpuUsPerRequest: median(list.map((l) => l.redisCpuUsPerRequest)),
      requestsPerRedisCoreSecond: 1e6 / median(list.map((l) => l.redisCpuUsPerRequest)),
      serverCpuUsPerRequest: median(list.map((l) => l.serverCpuUsPerRequest)),
      errors: list.reduce((sum, l) => sum + l.errors, 0),
      rounds: list,
    };
  });

  return { loadRows, idleCpuPerSecond };
}

/**
 * What a stream costs with 2 and with 300 small entries for a few `stream-node-max-bytes`
 * (Redis preallocates a new node's listpack up to that size), on a scratch key; the setting is
 * restored after.
 */
async function streamNodeBytes(stats: Redis) {
  const [, original = "4096"] = (await stats.config("GET", "stream-node-max-bytes")) as string[];
  const rows: Array<{ nodeMaxBytes: number; twoEntries: number; threeHundredEntries: number }> = [];
  const usage = async () => Number(await stats.call("MEMORY", "USAGE", "scratch", "SAMPLES", "0"));
  try {
    for (const nodeMaxBytes of [4096, 1024, 512]) {
      await stats.config("SET", "stream-node-max-bytes", String(nodeMaxBytes));
      await stats.del("scratch");
      const entry = (i: number) => ["s", "stream-1", "m", i % 2 === 0 ? "{}" : "x".repeat(180)];
      for (let i = 0; i < 2; i++) await stats.xadd("scratch", "*", ...entry(i));
      const twoEntries = await usage();
      for (let i = 2; i < 300; i++) await stats.xadd("scratch", "*", ...entry(i));
      rows.push({ nodeMaxBytes, twoEntries, threeHundredEntries: await usage() });
    }
  } finally {
    await stats.del("scratch");
    await stats.config("SET", "stream-node-max-bytes", original);
  }
  console.log(`stream node bytes: ${JSON.stringify(rows)}`);
  return rows;
}

type Memory = Awaited<ReturnType<typeof measureMemory>>["memory"] & {
  streamNodes: Awaited<ReturnType<typeof streamNodeBytes>>;
};
type LoadRow = Awaited<ReturnType<typeof measureLoads>>["loadRows"][number];

/** Writes bench/results/<date>/mcp-redis-work-<HHMM>.{json,md} and prints the Markdown. */
async function writeReport(
  stats: Redis,
  kinds: KindResult[],
  memory: Memory,
  loadRows: LoadRow[],
  idleCpuPerSecond: number,
): Promise<void> {
  const now = new Date();
  const meta = {
    date: now.toISOString(),
    commit: gitCommit(),
    command: "node --import tsx bench/mcp-redis-work.ts",
    node: process.version,
    cpus: os.cpus().length,
    loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
    redis: (await stats.info("server")).match(/redis_version:(\S+)/)?.[1],
    samples: SAMPLES,
    connections: CONNECTIONS,
    durationSeconds: DURATION,
    idleRedisCpuPerSecond: idleCpuPerSecond,
  };
  const dir = path.join(import.meta.dirname, "results", meta.date.slice(0, 10));
  mkdirSync(dir, { recursive: true });
  const stamp = meta.date.slice(11, 16).replace(":", "");
  const file = path.join(dir, `mcp-redis-work-${stamp}`);
  writeFileSync(
    `${file}.json`,
    `${JSON.stringify({ ...meta, kinds, memory, loads: loadRows }, null, 2)}\n`,
  );
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);
  const md = [
    `## Redis work per MCP request (${meta.date}, commit ${meta.commit}, ${meta.cpus} CPUs, load ${meta.loadAverage.join(" ")}, Redis ${meta.redis}, medians of ${SAMPLES})`,
    "",
    "| request | where | commands executed | commands sent | round trips (fewest-most) | executed, by command |",
    "| --- | --- | ---: | ---: | ---: | --- |",
    ...kinds.map(
      (k) =>
        `| ${k.kind} | ${k.path} | ${k.executed} | ${k.sent} | ${k.roundTrips} (${k.roundTripsRange.join("-")}) | ${Object.entries(
          k.executedByName,
        )
          .map(([n, c]) => `${n} ${c}`)
          .join(", ")} |`,
    ),
    "",
    "Commands sent, by round trip (one sample at the medians; cN = Redis connection N):",
    "",
    ...kinds.flatMap((k) => [`- ${k.kind}:`, ...k.example.map((line) => `  - ${line}`)]),
    "",
    `## Memory (${MEMORY_SESSIONS} sessions on the reference server)`,
    "",
    `- used_memory per session after initialize: ${memory.usedMemoryPerSessionAfterInitialize.toFixed(0)} B (${mb(memory.usedMemoryPerSessionAfterInitialize * 1e6)} MB per 1M sessions), ${memory.keysPerSessionAfterInitialize.toFixed(2)} keys per session`,
    `- after 3 calls (notes_put, 2 notes_get): ${memory.usedMemoryPerSessionAfter3Calls.toFixed(0)} B (${mb(memory.usedMemoryPerSessionAfter3Calls * 1e6)} MB per 1M sessions)`,
    `- keys of one session after initialize: ${memory.keysOfOneSessionAfterInitialize.map((k) => `${k.key} (${k.type}${k.length === undefined ? "" : `, ${k.length} entries`}) ${k.bytes} B`).join("; ")}`,
    `- after 3 calls: ${memory.keysOfOneSessionAfter3Calls.map((k) => `${k.key} (${k.type}${k.length === undefined ? "" : `, ${k.length} entries`}) ${k.bytes} B`).join("; ")}`,
    `- after ${STREAM_CALLS} calls: ${memory.keysOfOneSessionAfter150Calls.map((k) => `${k.key} (${k.type}${k.length === undefined ? "" : `, ${k.length} entries`}) ${k.bytes} B`).join("; ")}`,
    `- a stream of 2 / 300 small entries (180 B payloads) by stream-node-max-bytes: ${memory.streamNodes.map((r) => `${r.nodeMaxBytes}: ${r.twoEntries} / ${r.threeHundredEntries} B`).join("; ")}`,
    `- plain JSON, resumability off, after initialize and 3 calls: ${memory.keysOfOnePlainJsonSessionAfter3Calls.map((k) => `${k.key} (${k.type}) ${k.bytes} B`).join("; ")}`,
    "",
    `## Redis CPU per request (autocannon, ${CONNECTIONS} connections, ${DURATION} s x ${LOAD_ROUNDS} rounds, medians)`,
    "",
    "| load | requests/s | Redis CPU us/request | requests/s per Redis core | server CPU us/request | errors |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...loadRows.map(
      (l) =>
        `| ${l.load} | ${l.requestsPerSec.toFixed(0)} | ${l.redisCpuUsPerRequest.toFixed(1)} | ${l.requestsPerRedisCoreSecond.toFixed(0)} | ${l.serverCpuUsPerRequest.toFixed(0)} | ${l.errors} |`,
    ),
    "",
  ].join("\n");
  writeFileSync(`${file}.md`, md);
  console.log(md);
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const relay = new CountingRelay(redis.host, redis.port);
  const relayUrl = `redis://127.0.0.1:${await relay.listen()}`;
  const stats = new Redis({ host: redis.host, port: redis.port, lazyConnect: true });
  await stats.connect();
  const servers: ServerProcess[] = [];
  const plains: Array<{ url: string; close(): Promise<void> }> = [];
  const listeners: Client[] = [];
  try {
    const env = { ...STATE_KEY, REDIS_URL: relayUrl, KEY_PREFIX: "w:" };
    // One at a time, each kept as soon as it runs: a failed start leaves nothing behind.
    for (const serverEnv of [
      env,
      env,
      { ...env, MCP_PROFILE: "conformance", KEY_PREFIX: "c:" },
      { ...STATE_KEY, REDIS_URL: redis.url, KEY_PREFIX: "load:" },
    ]) {
      servers.push(await startServer({ env: serverEnv }));
    }
    const [a, b, c, direct] = servers as [
      ServerProcess,
      ServerProcess,
      ServerProcess,
      ServerProcess,
    ];
    plains.push(await startPlainJson(relayUrl, false), await startPlainJson(relayUrl, true));
    const [P, R] = plains.map((p) => p.url) as [string, string];
    const setup: Setup = {
      relay,
      stats,
      A: a.mcpUrl,
      B: b.mcpUrl,
      C: c.mcpUrl,
      P,
      R,
      direct,
      listeners,
    };
    const { pid, rid } = await warmUp(setup);
    const kinds = await countKinds(setup, pid, rid);
    const { memory, grown } = await measureMemory(setup);
    const { loadRows, idleCpuPerSecond } = await measureLoads(setup, grown);
    const streamNodes = await streamNodeBytes(stats);
    await writeReport(stats, kinds, { ...memory, streamNodes }, loadRows, idleCpuPerSecond);
  } finally {
    for (const listener of listeners) await listener.close().catch(() => {});
    for (const plain of plains) await plain.close().catch(() => {});
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    stats.disconnect();
    await relay.close();
    await redis.stop();
  }
}

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a notification");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

await main();
