export type {
  BusEvent,
  ChangeEvent,
  EventBusOptions,
  TaskStatusEvent,
} from "../event-bus.js";
export { createEventBus, EventBus } from "../event-bus.js";
export type { HandleCaller, HandleLifetime, HandleStoreOptions } from "../handles.js";
export { createHandleStore, HANDLE_DEFAULTS, HandleStore } from "../handles.js";
export type {
  MintOptions,
  RequestStateKey,
  RequestStateRefusal,
  RequestStates,
  RequestStatesOptions,
} from "../request-states.js";
export { createRequestStates } from "../request-states.js";
export type { RedisAccess } from "../support.js";
export { redisAccessOf } from "../support.js";
export type {
  DetailedTask,
  Task,
  TaskCaller,
  TaskError,
  TaskEventBus,
  TaskRun,
  TaskStatus,
  TaskStore,
  TaskStoreOptions,
} from "../tasks.js";
export { createTaskStore } from "../tasks.js";
export type {
  LegacyBridgeServices,
  LegacyConnectableServer,
  McpLegacyHttpHandler,
  McpLegacyHttpHandlerOptions,
} from "./legacy-http.js";
export { createLegacyHttpHandler } from "./legacy-http.js";
export type { V2Metrics } from "./metrics.js";
export { v2Metrics } from "./metrics.js";
export type { RequestStateCodecOptions, SharedRequestStateCodec } from "./request-state-codec.js";
export { requestStateCodec } from "./request-state-codec.js";
export type { ClosableServer, McpV2Services, McpV2ServicesOptions } from "./services.js";
export { registerRedisBackedServices } from "./services.js";
export type {
  RegisterTaskHandlersOptions,
  TaskAck,
  TaskHandlers,
  TaskIdParams,
  TaskUpdateParams,
} from "./tasks-handlers.js";
export {
  createTaskResult,
  registerTaskHandlers,
  TASKS_EXTENSION,
  taskHandlers,
} from "./tasks-handlers.js";
