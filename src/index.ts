export { ErrorCode, isSessionStoreError, SessionStoreError } from "./errors.js";
export {
  createMemorySessionStore,
  createRedisSessionStore,
  createSessionStore,
  isRedisAvailable,
} from "./factory.js";
export { DEFAULTS } from "./options.js";
export type { MetricsHandlerOptions } from "./telemetry/http.js";
export { metricsHandler } from "./telemetry/http.js";
export type { InstrumentedSessionStore } from "./telemetry/instrument.js";
export { instrument } from "./telemetry/instrument.js";
export type {
  Backend,
  InstrumentOptions,
  ListOptions,
  Lock,
  LockNode,
  LockOptions,
  Logger,
  RedisClusterConfig,
  SessionStore,
  SessionStoreOptions,
  SetOptions,
  StoreHealth,
} from "./types.js";
