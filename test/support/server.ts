/**
 * Test harness: builds the reference server (as `npm start` does, into a private output directory
 * so the shared dist/ is left alone) and runs it as a child process on a free port, ready when
 * `/healthz` answers.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./redis.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const READY_TIMEOUT_MS = 20_000;

function sourceStamp(dir: string, hash = createHash("sha1")): ReturnType<typeof createHash> {
  for (const item of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    const full = path.join(dir, item.name);
    if (item.isDirectory()) sourceStamp(full, hash);
    else hash.update(`${full}:${statSync(full).mtimeMs}:${statSync(full).size}\n`);
  }
  return hash;
}

/**
 * Compiles src/ with `tsc -p tsconfig.build.json` into `.tmp/server-build/<stamp>` (reused while
 * src/ is unchanged) and returns the path of `server/main.js`. Type errors elsewhere in src/ do not
 * stop the emit; a missing main.js does.
 */
export function buildServer(): string {
  const stamp = sourceStamp(path.join(ROOT, "src")).digest("hex").slice(0, 16);
  const out = path.join(ROOT, ".tmp", "server-build", stamp);
  const entry = path.join(out, "server", "main.js");
  if (existsSync(entry)) return entry;
  const staging = `${out}.${process.pid}.tmp`;
  mkdirSync(path.dirname(out), { recursive: true });
  const result = spawnSync(
    process.execPath,
    [
      path.join(ROOT, "node_modules", "typescript", "bin", "tsc"),
      "-p",
      "tsconfig.build.json",
      "--outDir",
      staging,
      "--declaration",
      "false",
      "--sourceMap",
      "false",
    ],
    { cwd: ROOT, encoding: "utf8" },
  );
  if (!existsSync(path.join(staging, "server", "main.js"))) {
    rmSync(staging, { recursive: true, force: true });
    throw new Error(`tsc did not emit server/main.js:\n${result.stdout}${result.stderr}`);
  }
  try {
    renameSync(staging, out);
  } catch {
    // Another worker finished the same build first: use theirs.
    rmSync(staging, { recursive: true, force: true });
  }
  return entry;
}

export interface ServerProcess {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `http://127.0.0.1:<port>/mcp` */
  readonly mcpUrl: string;
  readonly pid: number;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the exit status once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGTERM) and waits for the exit; SIGKILL after `graceMs`. */
  stop(
    signal?: NodeJS.Signals,
    graceMs?: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartServerOptions {
  /** Extra environment (PORT and HOST are set by the harness unless given). */
  env?: Record<string, string | undefined>;
  port?: number;
}

/** Starts the built server; resolves when GET /healthz answers 200. */
export async function startServer(options: StartServerOptions = {}): Promise<ServerProcess> {
  const entry = buildServer();
  const port = options.port ?? (await freePort());
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: "127.0.0.1" };
  // A test decides the store explicitly; an inherited REDIS_URL would change it silently.
  delete env.REDIS_URL;
  delete env.SESSION_STORE;
  delete env.OTEL_EXPORTER_OTLP_ENDPOINT;
  delete env.OTEL_TRACES_EXPORTER;
  // Tests open many sessions from one address; a test of the limit sets it.
  env.INIT_RATE_LIMIT = "0";
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const child: ChildProcess = spawn(process.execPath, [entry], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    log += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    log += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (gone) throw new Error(`the server exited before it was ready:\n${log}`);
    try {
      const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await exited;
      throw new Error(`the server did not answer /healthz within ${READY_TIMEOUT_MS} ms:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    url,
    mcpUrl: `${url}/mcp`,
    pid: child.pid ?? 0,
    output: () => log,
    exited,
    async stop(signal = "SIGTERM", graceMs = 15_000) {
      if (!gone) {
        child.kill(signal);
        let timer: NodeJS.Timeout | undefined;
        const killed = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            child.kill("SIGKILL");
            resolve();
          }, graceMs);
        });
        await Promise.race([exited, killed]);
        clearTimeout(timer);
      }
      return exited;
    },
  };
}
