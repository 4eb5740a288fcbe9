export type { McpEventStoreOptions, StoredEvent } from "./event-store.js";
export {
  createMcpEventStore,
  McpEventStore,
  SessionEventStore,
} from "./event-store.js";
export type { McpHttpHandler, McpHttpHandlerOptions } from "./http.js";
export { createMcpHttpHandler } from "./http.js";
export type { McpSessionRecord } from "./sessions.js";
export type { ConnectableServer } from "./v1/http.js";
export type { ClosableServer, McpServices, McpServicesOptions } from "./v1/services.js";
export { registerRedisBackedServices } from "./v1/services.js";
export type { McpTaskStoreOptions } from "./v1/task-store/index.js";
export {
  createMcpTaskStores,
  MemoryTaskMessageQueue,
  MemoryTaskStore,
  RedisTaskMessageQueue,
  RedisTaskStore,
} from "./v1/task-store/index.js";
