/** The SDK v1 handler, at the path it always had (`src/server` and older imports use it). */
export type { ConnectableServer, McpHttpHandler, McpHttpHandlerOptions } from "./v1/http.js";
export { createMcpHttpHandler } from "./v1/http.js";
