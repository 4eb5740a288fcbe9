export type { McpEventStoreOptions, StoredEvent } from "./event-store.js";
export {
  createMcpEventStore,
  McpEventStore,
  SessionEventStore,
} from "./event-store.js";
export type { McpHttpHandler, McpHttpHandlerOptions } from "./http.js";
export { createMcpHttpHandler } from "./http.js";
export type { ClosableServer, McpServices, McpServicesOptions } from "./services.js";
export { registerRedisBackedServices } from "./services.js";
export type { McpSessionRecord } from "./sessions.js";
export type { McpTaskStoreOptions } from "./task-store.js";
export {
  createMcpTaskStores,
  MemoryTaskMessageQueue,
  MemoryTaskStore,
  RedisTaskMessageQueue,
  RedisTaskStore,
} from "./task-store.js";
export type { ConnectableServer } from "./v1/http.js";
