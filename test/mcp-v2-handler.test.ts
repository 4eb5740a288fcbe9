/**
 * The example server (`examples/mcp-v2-server.ts`: a real `createMcpHandler` with the Redis
 * services) in two processes on one Redis, driven by real SDK v2 clients pinned to 2026-07-28.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "./support/eventually.js";
import { type RedisNode, startRedis } from "./support/redis.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const EXAMPLE = join(ROOT, "examples/mcp-v2-server.ts");

interface Served {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

async function serve(redisUrl: string): Promise<Served> {
  const child = spawn(process.execPath, ["--import", "tsx", EXAMPLE], {
    cwd: ROOT,
    env: { ...process.env, REDIS_URL: redisUrl, PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("example did not listen within 20 s")), 20_000);
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = out.match(/listening on (\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`example exited with ${code}: ${out}`));
    });
  });
  return {
    child,
    url,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      child.kill("SIGTERM");
      await exited;
      clearTimeout(timer);
    },
  };
}

async function connect(url: string): Promise<Client> {
  const client = new Client(
    { name: "v2-test", version: "1.0.0" },
    { versionNegotiation: { mode: { pin: "2026-07-28" } } },
  );
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

function textOf(result: unknown): string {
  const content = (result as { content?: Array<{ text?: string }> }).content ?? [];
  return content.map((c) => c.text ?? "").join("");
}

it("docs/mcp-v2.md shows the example exactly as the test runs it, imports by package name", () => {
  const doc = readFileSync(join(ROOT, "docs/mcp-v2.md"), "utf8");
  const shown = doc.match(
    /<!-- example: examples\/mcp-v2-server\.ts -->\n```ts\n([\s\S]*?)```/,
  )?.[1];
  const source = readFileSync(EXAMPLE, "utf8")
    .replace('from "../src/index.js"', 'from "mcp-session-store"')
    .replace('from "../src/mcp/v2/index.js"', 'from "mcp-session-store/mcp/v2"');
  expect(shown).toBe(source);
});

describe("createMcpHandler with the Redis services, two processes", () => {
  let node: RedisNode;
  let a: Served;
  let b: Served;
  const clients: Client[] = [];

  beforeAll(async () => {
    node = await startRedis();
    [a, b] = await Promise.all([serve(node.url), serve(node.url)]);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await Promise.all([a?.stop(), b?.stop()]);
    await node?.stop();
  });

  it("a subscriptions/listen stream on B receives the tools/list_changed a call on A raised, once", async () => {
    const onA = await connect(a.url);
    const onB = await connect(b.url);
    clients.push(onA, onB);
    let changed = 0;
    onB.setNotificationHandler("notifications/tools/list_changed", () => {
      changed += 1;
    });
    const subscription = await onB.listen({ toolsListChanged: true });
    expect(subscription.honoredFilter).toEqual({ toolsListChanged: true });
    expect(textOf(await onA.callTool({ name: "catalog_changed", arguments: {} }))).toBe("notified");
    await eventually(async () => expect(changed).toBe(1), 10_000, 50);
    await new Promise((r) => setTimeout(r, 300));
    expect(changed).toBe(1);
    await subscription.close();
  });

  it("a handle minted on A is read and updated on B; a foreign or unknown one is a tool error", async () => {
    const onA = await connect(a.url);
    const onB = await connect(b.url);
    clients.push(onA, onB);
    const first = textOf(await onA.callTool({ name: "cart_add", arguments: { item: "book" } }));
    const handle = first.match(/^cart (\S+):/)?.[1] as string;
    expect(handle).toMatch(/^h_/);
    const second = await onB.callTool({
      name: "cart_add",
      arguments: { item: "pen", cart: handle },
    });
    expect(textOf(second)).toBe(`cart ${handle}: book, pen`);
    const unknown = await onB.callTool({
      name: "cart_add",
      arguments: { item: "x", cart: `h_${"Z".repeat(32)}` },
    });
    expect(unknown.isError).toBe(true);
    expect(textOf(unknown)).toBe("No such cart.");
  });
});
