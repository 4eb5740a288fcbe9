import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisNode, startRedis } from "./support/redis.js";

const run = promisify(execFile);
/** The package under test: the repository, or a private build laid out like it. */
const root = process.env.MSS_PACKAGE_ROOT ?? resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The seed example of the README, exactly as written there but for the Redis URL. */
function seedExample(url: string): string {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const block = readme.match(/```ts\n(\/\/ seed example\n[\s\S]*?)```/)?.[1];
  if (block === undefined)
    throw new Error("README has no ```ts block starting with // seed example");
  return block.replaceAll("redis://localhost:6379", url);
}

describe("the built package, imported by name", () => {
  let dir: string;
  let node: RedisNode;

  beforeAll(async () => {
    if (!existsSync(join(root, "dist/index.js")))
      throw new Error("dist/ is missing: run `npm run build` (npm test does)");
    node = await startRedis();
    // A consumer project whose node_modules holds this package, as npm would link it.
    dir = mkdtempSync(join(tmpdir(), "mss-consumer-"));
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(root, join(dir, "node_modules", "mcp-session-store"), "dir");
  });
  afterAll(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await node?.stop();
  });

  it("runs the README seed example with import", async () => {
    const body = seedExample(node.url).replace(
      /^import .*$/m,
      'import { createSessionStore, createMemorySessionStore, isRedisAvailable } from "mcp-session-store";',
    );
    writeFileSync(
      join(dir, "seed.mjs"),
      `${body}\nconsole.log(JSON.stringify({ backend: sessionStore.backend, session, redisAvailable, memory: memoryStore.backend }));\nawait memoryStore.disconnect();\n`,
    );
    const { stdout } = await run(process.execPath, ["seed.mjs"], { cwd: dir, timeout: 20_000 });
    const last = JSON.parse(stdout.trim().split("\n").at(-1) as string);
    expect(last).toEqual({
      backend: "redis",
      session: { toolName: "my-tool", result: "success" },
      redisAvailable: true,
      memory: "memory",
    });
  });

  it("works from CommonJS with require()", async () => {
    writeFileSync(
      join(dir, "seed.cjs"),
      `const { createSessionStore, createMemorySessionStore, isRedisAvailable, SessionStoreError, ErrorCode } = require("mcp-session-store");
(async () => {
  const store = await createSessionStore({ redisUrl: ${JSON.stringify(node.url)}, prefix: "cjs:" });
  await store.setSession("session-123", { ok: true });
  const got = await store.getSession("session-123");
  const err = await store.getSession("").catch((e) => e);
  console.log(JSON.stringify({ got, backend: store.backend, available: await isRedisAvailable(${JSON.stringify(node.url)}), isError: err instanceof SessionStoreError, code: err.code, codes: Object.keys(ErrorCode).length, memory: createMemorySessionStore().backend }));
  await store.disconnect();
  process.exit(0);
})();
`,
    );
    const { stdout } = await run(process.execPath, ["seed.cjs"], { cwd: dir, timeout: 20_000 });
    expect(JSON.parse(stdout.trim().split("\n").at(-1) as string)).toEqual({
      got: { ok: true },
      backend: "redis",
      available: true,
      isError: true,
      code: "ERR_INVALID_SESSION_ID",
      codes: 14,
      memory: "memory",
    });
  });

  it("the root import never loads the MCP SDK nor the OpenTelemetry SDK", () => {
    // Walk the static import graph of dist/index.js.
    const seen = new Set<string>();
    const external = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, "utf8");
      for (const m of source.matchAll(
        /(?:^|\n)\s*(?:import|export)[^"';]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g,
      )) {
        const spec = (m[1] ?? m[2]) as string;
        if (spec.startsWith(".")) visit(resolve(dirname(file), spec));
        else external.add(spec);
      }
    };
    visit(join(root, "dist/index.js"));
    expect(seen.size).toBeGreaterThan(5);
    const forbidden = [...external].filter(
      (s) => s.startsWith("@modelcontextprotocol/") || s.startsWith("@opentelemetry/sdk-"),
    );
    expect(forbidden).toEqual([]);
    expect(external).toContain("ioredis");
  });

  it("loads ./mcp, ./mcp/v1, ./mcp/v2 and ./otel by name, from import and from require", async () => {
    writeFileSync(
      join(dir, "subpaths.mjs"),
      `import * as mcp from "mcp-session-store/mcp";
import * as v1 from "mcp-session-store/mcp/v1";
import * as v2 from "mcp-session-store/mcp/v2";
import * as otel from "mcp-session-store/otel";
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const cjs = require("mcp-session-store/mcp");
const cjs2 = require("mcp-session-store/mcp/v2");
console.log(JSON.stringify({
  mcp: [typeof mcp.registerRedisBackedServices, typeof mcp.createMcpHttpHandler, typeof mcp.createMcpEventStore],
  v1: v1.registerRedisBackedServices === mcp.registerRedisBackedServices,
  v2: [typeof v2.registerRedisBackedServices, typeof v2.createEventBus, typeof v2.createHandleStore],
  otel: typeof otel.startTelemetry,
  cjs: typeof cjs.registerRedisBackedServices,
  cjs2: cjs2.registerRedisBackedServices === v2.registerRedisBackedServices,
}));
`,
    );
    const { stdout } = await run(process.execPath, ["subpaths.mjs"], { cwd: dir, timeout: 20_000 });
    expect(JSON.parse(stdout.trim().split("\n").at(-1) as string)).toEqual({
      mcp: ["function", "function", "function"],
      v1: true,
      v2: ["function", "function", "function"],
      otel: "function",
      cjs: "function",
      cjs2: true,
    });
  });

  it("each guarded MCP entry exports exactly what its index exports", async () => {
    writeFileSync(
      join(dir, "entries.mjs"),
      `const pairs = [["mcp-session-store/mcp", "mcp/index.js"], ["mcp-session-store/mcp/v2", "mcp/v2/index.js"]];
const out = [];
for (const [spec, file] of pairs) {
  const entry = Object.keys(await import(spec)).sort();
  const index = Object.keys(await import(${JSON.stringify(`${root}/dist/`)} + file)).sort();
  out.push({ spec, entry, index });
}
console.log(JSON.stringify(out));
`,
    );
    const { stdout } = await run(process.execPath, ["entries.mjs"], { cwd: dir, timeout: 20_000 });
    const out = JSON.parse(stdout.trim().split("\n").at(-1) as string) as Array<{
      entry: string[];
      index: string[];
    }>;
    expect(out).toHaveLength(2);
    for (const { entry, index } of out) {
      expect(index.length).toBeGreaterThan(5);
      expect(entry).toEqual(index);
    }
  });

  it("exposes ./mcp, ./mcp/v1, ./mcp/v2 and ./otel subpaths with types", async () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    for (const [, entry] of Object.entries(
      pkg.exports as Record<string, { types?: string; default?: string } | string>,
    )) {
      if (typeof entry === "string") continue;
      expect(existsSync(join(root, entry.types as string))).toBe(true);
      expect(existsSync(join(root, entry.default as string))).toBe(true);
    }
  });
});
