/**
 * MCP over Streamable HTTP: tool calls/s and latency at 64 connections (autocannon) for
 *   - baseline: the SDK's own pattern (a map of StreamableHTTPServerTransport per session, in memory)
 *   - shared/memory: createMcpHttpHandler on the memory store
 *   - shared/redis: createMcpHttpHandler on a real redis-server
 * plus the cost of the first request on an instance that must rebuild the session from Redis.
 * Each server runs in its own child process; variants are interleaved in every run; medians of
 * BENCH_ROUNDS runs (default 3; 1 with --quick) are printed as Markdown and written to
 * bench/results/<YYYY-MM-DD>/mcp.json and mcp.md.
 *
 *   npm run bench:mcp [-- --quick]     # BENCH_ROUNDS=3 BENCH_DURATION=5 (seconds) override
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import autocannon from "autocannon";
import { z } from "zod";
import { knob } from "./quick.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const CONNECTIONS = 64;
const SESSIONS = 64;
const REBUILDS = 200;
const PROTOCOL = "2025-11-25";

function buildServer(): McpServer {
  const server = new McpServer({ name: "bench", version: "1.0.0" });
  server.registerTool("echo", { inputSchema: { text: z.string() } }, async ({ text }) => ({
    content: [{ type: "text", text }],
  }));
  return server;
}

// ------------------------------------------------------------------------------------------------
// Child: one server

async function serve(variant: string): Promise<void> {
  let handle: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;
  if (variant === "baseline") {
    // The SDK's documented stateful pattern: sessions live in this process's map.
    const transports = new Map<string, StreamableHTTPServerTransport>();
    handle = async (req, res) => {
      const id = req.headers["mcp-session-id"];
      if (typeof id === "string") {
        const transport = transports.get(id);
        if (transport === undefined) {
          res.writeHead(404).end();
          return;
        }
        await transport.handleRequest(req, res);
        return;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body: unknown = JSON.parse(Buffer.concat(chunks).toString());
      if (!isInitializeRequest(body)) {
        res.writeHead(400).end();
        return;
      }
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (sid) => {
          transports.set(sid, transport);
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) transports.delete(transport.sessionId);
      };
      await buildServer().connect(transport);
      await transport.handleRequest(req, res, body);
    };
  } else {
    const { createMcpHttpHandler, registerRedisBackedServices } = await import(
      "../src/mcp/index.js"
    );
    const services = await registerRedisBackedServices(null, {
      ...(variant === "memory"
        ? { forceMemorySessionStore: true }
        : { redisUrl: process.env.REDIS_URL, fallback: "error" }),
      prefix: "bench:mcp:",
    });
    handle = createMcpHttpHandler({ services, createServer: () => buildServer() });
  }
  const server = http.createServer((req, res) => void handle(req, res));
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(
      `${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`,
    );
  });
  process.on("SIGTERM", () => process.exit(0));
}

// ------------------------------------------------------------------------------------------------
// Parent: load

interface Child {
  url: string;
  stop(): Promise<void>;
}

async function spawnServer(variant: string, env: Record<string, string> = {}): Promise<Child> {
  const child: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(import.meta.url), "serve", variant],
    {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once("line", (line) => {
      lines.close();
      resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once("exit", (code) => reject(new Error(`${variant} server exited with ${code}`)));
  });
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

const HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  "mcp-protocol-version": PROTOCOL,
};

async function initialize(url: string): Promise<string> {
  const res = await fetch(url, {
    method: "POST",
    headers: HEADERS,
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: {
        protocolVersion: PROTOCOL,
        capabilities: {},
        clientInfo: { name: "bench", version: "1" },
      },
    }),
  });
  await res.text();
  const id = res.headers.get("mcp-session-id");
  if (res.status !== 200 || id === null) throw new Error(`initialize failed: ${res.status}`);
  return id;
}

const CALL = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "tools/call",
  params: { name: "echo", arguments: { text: "hello" } },
});

async function call(url: string, id: string): Promise<number> {
  const start = performance.now();
  const res = await fetch(url, {
    method: "POST",
    headers: { ...HEADERS, "mcp-session-id": id },
    body: CALL,
  });
  const text = await res.text();
  if (res.status !== 200 || !text.includes("hello"))
    throw new Error(`call failed: ${res.status} ${text}`);
  return performance.now() - start;
}

interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(url: string, durationS: number): Promise<LoadResult> {
  const sessions = await Promise.all(Array.from({ length: SESSIONS }, () => initialize(url)));
  for (const id of sessions) await call(url, id); // warm every session
  let next = 0;
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: durationS,
    requests: [
      {
        method: "POST",
        headers: HEADERS,
        body: CALL,
        setupRequest: (request) => {
          const id = sessions[next++ % sessions.length] as string;
          return { ...request, headers: { ...request.headers, "mcp-session-id": id } };
        },
      },
    ],
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
  };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

const median = (values: number[]) => quantile(values, 0.5);

/** First request on an instance that must rebuild each session, against a warm request. */
async function rebuildCost(
  redisUrl: string,
): Promise<{ firstP50: number; firstP99: number; warmP50: number; warmP99: number }> {
  const [owner, other] = await Promise.all([
    spawnServer("redis", { REDIS_URL: redisUrl }),
    spawnServer("redis", { REDIS_URL: redisUrl }),
  ]);
  try {
    const ids: string[] = [];
    for (let i = 0; i < REBUILDS; i++) ids.push(await initialize(owner.url));
    const first: number[] = [];
    const warm: number[] = [];
    for (const id of ids) first.push(await call(other.url, id));
    for (const id of ids) warm.push(await call(other.url, id));
    return {
      firstP50: quantile(first, 0.5),
      firstP99: quantile(first, 0.99),
      warmP50: quantile(warm, 0.5),
      warmP99: quantile(warm, 0.99),
    };
  } finally {
    await Promise.all([owner.stop(), other.stop()]);
  }
}

async function main(): Promise<void> {
  const runs = knob("BENCH_ROUNDS", 3, 1);
  const duration = knob("BENCH_DURATION", 5, 2);
  const { startRedis } = await import("../test/support/redis.js");
  const redis = await startRedis();
  const variants = ["baseline", "memory", "redis"] as const;
  const results: Record<string, LoadResult[]> = { baseline: [], memory: [], redis: [] };
  const rebuilds: Array<Awaited<ReturnType<typeof rebuildCost>>> = [];
  try {
    for (let run = 1; run <= runs; run++) {
      for (const variant of variants) {
        const server = await spawnServer(variant, { REDIS_URL: redis.url });
        try {
          const r = await load(server.url, duration);
          results[variant]?.push(r);
          console.error(
            `run ${run} ${variant}: ${r.rps.toFixed(0)} calls/s p50 ${r.p50} ms p99 ${r.p99} ms errors ${r.errors}`,
          );
        } finally {
          await server.stop();
        }
      }
      rebuilds.push(await rebuildCost(redis.url));
    }
  } finally {
    await redis.stop();
  }
  const base = median(results.baseline?.map((r) => r.rps) ?? []);
  const rows = variants.map((variant) => {
    const list = results[variant] ?? [];
    const rps = median(list.map((r) => r.rps));
    return {
      variant,
      rps,
      ratio: rps / base,
      p50: median(list.map((r) => r.p50)),
      p99: median(list.map((r) => r.p99)),
      errors: list.reduce((n, r) => n + r.errors, 0),
    };
  });
  const rebuild = {
    firstP50: median(rebuilds.map((r) => r.firstP50)),
    firstP99: median(rebuilds.map((r) => r.firstP99)),
    warmP50: median(rebuilds.map((r) => r.warmP50)),
    warmP99: median(rebuilds.map((r) => r.warmP99)),
  };
  const names: Record<string, string> = {
    baseline: "SDK transport map (baseline)",
    memory: "createMcpHttpHandler, memory store",
    redis: "createMcpHttpHandler, Redis store",
  };
  const lines = [
    `Tool calls (tools/call echo, SSE responses), ${CONNECTIONS} connections, ${SESSIONS} sessions, ${duration} s per variant, median of ${runs} runs, Node ${process.version}:`,
    "",
    "| server | calls/s | vs baseline | p50 ms | p99 ms | errors |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map(
      (r) =>
        `| ${names[r.variant]} | ${r.rps.toFixed(0)} | ${r.ratio.toFixed(2)}x | ${r.p50} | ${r.p99} | ${r.errors} |`,
    ),
    "",
    `First request for a session on an instance that must rebuild it (Redis, ${REBUILDS} sessions, sequential):`,
    "",
    "| request | p50 ms | p99 ms |",
    "| --- | ---: | ---: |",
    `| first (rebuild: read record, new server + transport, replayed initialize) | ${rebuild.firstP50.toFixed(2)} | ${rebuild.firstP99.toFixed(2)} |`,
    `| next (warm) | ${rebuild.warmP50.toFixed(2)} | ${rebuild.warmP99.toFixed(2)} |`,
  ];
  console.log(lines.join("\n"));
  const dir = path.join(here, "results", new Date().toISOString().slice(0, 10));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, "mcp.json"),
    `${JSON.stringify({ node: process.version, runs, duration, connections: CONNECTIONS, rows, rebuild, raw: results, rebuilds }, null, 2)}\n`,
  );
  writeFileSync(path.join(dir, "mcp.md"), `## MCP over Streamable HTTP\n\n${lines.join("\n")}\n`);
}

if (process.argv[2] === "serve") await serve(process.argv[3] ?? "baseline");
else await main();
