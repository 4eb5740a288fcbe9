import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type RedisNode, startRedis } from "./support/redis.js";

const ROOT = path.resolve(import.meta.dirname, "..");
let redis: RedisNode;

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

it("examples/mcp-v2-tasks.ts runs against Redis and prints what docs/mcp-v2-state.md shows", async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", path.join(ROOT, "examples", "mcp-v2-tasks.ts")],
    { cwd: ROOT, env: { ...process.env, REDIS_URL: redis.url }, timeout: 60_000 },
  );
  expect(stdout.trim().split("\n")).toEqual([
    "transfer: sent 10",
    "replayed round 2: -32602",
    "task created: task working",
    "task asks for: format",
    "task result: report.pdf",
  ]);
});
