/**
 * The package entry of `mcp-session-store/mcp/v2`: checks that the SDK v2 server is installed,
 * then loads `./index.js`. Loaded with `require()` so that this module has no top-level await and
 * stays loadable from CommonJS; its exports are those of `./index.js`.
 */
import { createRequire } from "node:module";
import { assertPeerInstalled } from "../peer.js";

assertPeerInstalled(
  "@modelcontextprotocol/server",
  "@modelcontextprotocol/server",
  "^2.4.0",
  "mcp-session-store/mcp/v2",
  (specifier) => import.meta.resolve(specifier),
);

const v2: typeof import("./index.js") = createRequire(import.meta.url)("./index.js");

export const {
  createEventBus,
  EventBus,
  createHandleStore,
  HANDLE_DEFAULTS,
  HandleStore,
  createRequestStates,
  redisAccessOf,
  createTaskStore,
  v2Metrics,
  requestStateCodec,
  registerRedisBackedServices,
  createTaskResult,
  registerTaskHandlers,
  TASKS_EXTENSION,
  taskHandlers,
  createLegacyHttpHandler,
} = v2;
