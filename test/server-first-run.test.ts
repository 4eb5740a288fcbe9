/**
 * The reference server on a user's first run: an empty REDIS_URL (docker-compose's `${REDIS_URL}`
 * of an unset variable), a port already taken, a Redis that refuses, a wrong password, a Redis
 * that dies: each is one line that names the cause and what to do, never a stack.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { DEFAULT_PORT, loadConfig } from "../src/server/config.js";
import { freePort, type RedisNode, startRedis } from "./support/redis.js";
import { buildServer, type ServerProcess, startServer } from "./support/server.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Runs the built server until it exits by itself (bounded); returns its status and output. */
async function runToExit(
  env: Record<string, string>,
  timeoutMs = 15_000,
): Promise<{ code: number | null; output: string }> {
  const entry = buildServer();
  const child = spawn(process.execPath, [entry], {
    env: { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", INIT_RATE_LIMIT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (c: Buffer) => {
    output += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    output += c.toString();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearTimeout(timer);
  return { code, output };
}

function lines(output: string): string[] {
  return output.split("\n").filter((l) => l.trim() !== "");
}

// Compiling src/ may take a while on a busy machine; once per file, before any server starts.
beforeAll(() => {
  buildServer();
}, 300_000);

describe("configuration of a first run", () => {
  it("treats an empty REDIS_URL as unset", () => {
    const config = loadConfig({ REDIS_URL: "", SESSION_STORE: "" });
    expect(config.store).toBe("memory");
    expect(config.redisUrl).toBeUndefined();
  });

  it("listens by default on a port no service of docker-compose.yml publishes, and says it once", () => {
    expect(loadConfig({}).port).toBe(DEFAULT_PORT);
    const compose = parse(readFileSync(path.join(ROOT, "docker-compose.yml"), "utf8")) as {
      services: Record<string, { ports?: string[] }>;
    };
    const published = Object.values(compose.services).flatMap((s) =>
      (s.ports ?? []).map((p) => Number(String(p).split(":")[0])),
    );
    expect(published).not.toContain(DEFAULT_PORT);
    for (const script of ["session-lifecycle.ts", "lock-contention.ts", "failover.ts"]) {
      const text = readFileSync(path.join(ROOT, "load", script), "utf8");
      expect(text, script).not.toMatch(/localhost:3000\b/);
    }
  });
});

describe("reference server, first run", () => {
  it("serves on the memory store when REDIS_URL is empty", async () => {
    const server = await startServer({ env: { REDIS_URL: "", SESSION_STORE: "" } });
    try {
      expect(server.output()).toContain("session store: memory");
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
    } finally {
      await server.stop();
    }
  }, 180_000);

  it("drains once when Ctrl-C reaches it twice (from the terminal and from npm start's wrapper)", async () => {
    const server = await startServer({ env: { SHUTDOWN_TIMEOUT_MS: "3000" } });
    const init = await fetch(server.mcpUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: {
          protocolVersion: "2025-11-25",
          capabilities: {},
          clientInfo: { name: "c", version: "1" },
        },
      }),
    });
    const id = init.headers.get("mcp-session-id") as string;
    await init.text();
    // A call in flight keeps the drain going while the second signal arrives.
    const call = fetch(server.mcpUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": id,
        "mcp-protocol-version": "2025-11-25",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 2,
        method: "tools/call",
        params: { name: "slow_task", arguments: { steps: 4, stepMs: 200 } },
      }),
    }).then((r) => r.text());
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(server.pid, "SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(server.pid, "SIGINT");
    expect(await call).toContain('"steps":4');
    const { code, signal } = await server.stop("SIGINT", 10_000);
    expect(signal).toBeNull();
    expect(code).toBe(0);
    expect(server.output()).toContain("[mcp-server] stopped");
  }, 180_000);

  it("prints one line and exits 1 when the port is taken", async () => {
    const port = await freePort();
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(port, "127.0.0.1", resolve));
    try {
      const { code, output } = await runToExit({ PORT: String(port) });
      expect(code).toBe(1);
      const errors = lines(output).filter((l) => !l.includes("session store:"));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(`127.0.0.1:${port}`);
      expect(errors[0]).toContain("already in use");
      expect(errors[0]).toMatch(/set PORT/);
      expect(output).not.toMatch(/\n\s+at /);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  }, 180_000);

  it("names a refused connection at start, with the redacted URL, in one line", async () => {
    const port = await freePort();
    const { code, output } = await runToExit({
      REDIS_URL: `redis://user:s3cret@127.0.0.1:${port}`,
    });
    expect(code).toBe(1);
    expect(lines(output)).toHaveLength(1);
    expect(output).toContain("ECONNREFUSED");
    expect(output).toContain(`127.0.0.1:${port}`);
    expect(output).not.toContain("s3cret");
    expect(output).not.toMatch(/fallback|Connection is closed/);
  }, 180_000);

  describe("with Redis", () => {
    let redis: RedisNode;

    beforeAll(async () => {
      redis = await startRedis();
    }, 180_000);
    afterAll(async () => {
      await redis?.stop();
    });

    it("names a wrong password as an authentication failure", async () => {
      const admin = new Redis(redis.url);
      await admin.config("SET", "requirepass", "right-one");
      await admin.quit();
      try {
        const { code, output } = await runToExit({
          REDIS_URL: `redis://:wrong-one@127.0.0.1:${redis.port}`,
        });
        expect(code).toBe(1);
        expect(lines(output)).toHaveLength(1);
        expect(output).toMatch(/authentication failed/);
        expect(output).not.toContain("wrong-one");
      } finally {
        const back = new Redis(`redis://:right-one@127.0.0.1:${redis.port}`);
        await back.config("SET", "requirepass", "");
        await back.quit();
      }
    }, 180_000);

    it("says on /readyz why Redis is not ready (the refused connection, not ioredis' words)", async () => {
      let server: ServerProcess | undefined;
      try {
        server = await startServer({ env: { REDIS_URL: redis.url, KEY_PREFIX: "firstrun:" } });
        expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
        const headers = {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        };
        const init = await fetch(server.mcpUrl, {
          method: "POST",
          headers,
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 1,
            method: "initialize",
            params: {
              protocolVersion: "2025-11-25",
              capabilities: {},
              clientInfo: { name: "c", version: "1" },
            },
          }),
        });
        const session = init.headers.get("mcp-session-id") as string;
        await init.text();
        await redis.kill();
        let detail = "";
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          const r = await fetch(`${server.url}/readyz`);
          const body = (await r.json()) as { detail?: string };
          if (r.status === 503 && body.detail?.includes("ECONNREFUSED")) {
            detail = body.detail;
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        expect(detail).toContain(`127.0.0.1:${redis.port}`);
        expect(detail).not.toMatch(/Stream isn't writeable|max retries/);

        // A request meanwhile gets 503, and the log line names the same cause.
        const call = await fetch(server.mcpUrl, {
          method: "POST",
          headers: { ...headers, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25" },
          body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
        });
        expect(call.status).toBe(503);
        await call.text();
        const line = server
          .output()
          .split("\n")
          .find((l) => l.includes("Session store unavailable"));
        expect(line).toContain("ECONNREFUSED");
        expect(line).not.toMatch(/Stream isn't writeable|max retries/);
      } finally {
        await server?.stop();
        await redis.restart();
      }
    }, 180_000);
  });
});
