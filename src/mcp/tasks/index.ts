export { createTaskStore } from "./store.js";
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
} from "./types.js";
