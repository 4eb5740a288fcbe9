/** The tasks extension's store (SDK-independent): `tasks/` holds the types, the store, and its Redis and memory backends. */
export type {
  DetailedTask,
  Task,
  TaskCaller,
  TaskError,
  TaskEventBus,
  TaskRun,
  TaskStatus,
  TaskStatusEvent,
  TaskStore,
  TaskStoreOptions,
} from "./tasks/index.js";
export { createTaskStore } from "./tasks/index.js";
