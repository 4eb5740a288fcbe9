/**
 * The package entry of `mcp-session-store/mcp` (and `/mcp/v1`): checks that the SDK v1 is
 * installed, then loads `./index.js`. Loaded with `require()` so that this module has no top-level
 * await and stays loadable from CommonJS; its exports are those of `./index.js`.
 */
import { createRequire } from "node:module";
import { assertPeerInstalled } from "./peer.js";

assertPeerInstalled(
  "@modelcontextprotocol/sdk/server/index.js",
  "@modelcontextprotocol/sdk",
  "^1.24.0",
  "mcp-session-store/mcp",
  (specifier) => import.meta.resolve(specifier),
);

const mcp: typeof import("./index.js") = createRequire(import.meta.url)("./index.js");

export const {
  createMcpEventStore,
  McpEventStore,
  SessionEventStore,
  createMcpHttpHandler,
  registerRedisBackedServices,
  createMcpTaskStores,
  MemoryTaskMessageQueue,
  MemoryTaskStore,
  RedisTaskMessageQueue,
  RedisTaskStore,
} = mcp;
