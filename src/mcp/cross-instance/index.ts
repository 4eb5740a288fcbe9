import { randomUUID } from "node:crypto";
import type { Registry } from "prom-client";
import type { Logger } from "../../types.js";
import type { McpEventStore } from "../event-store.js";
import type { RedisAccess } from "../support.js";
import { AnswerRouter } from "./answers.js";
import { type Channels, LocalChannels, RedisChannels } from "./channels.js";
import { type CrossInstanceMetrics, crossInstanceMetrics } from "./metrics.js";
import { StreamPush } from "./push.js";
import { StandaloneStreams } from "./standalone.js";

/** Options of `createCrossInstance`. */
export interface CrossInstanceOptions {
  /** Redis behind the session store (`redisAccessOf(store)`); `undefined` for one process. */
  redis: RedisAccess | undefined;
  /** The session event logs; without them standalone streams stay with the SDK. */
  events: McpEventStore | undefined;
  registry: Registry;
  logger: Logger;
  /** How long an unanswered server-to-client request stays routable, ms. @default 3600000 */
  answerTtlMs?: number;
  retryIntervalMs?: number;
  keepAliveMs?: number;
}

/** The cross-instance parts of one handler: answers, push, standalone streams. */
export interface CrossInstance {
  readonly instanceId: string;
  readonly metrics: CrossInstanceMetrics;
  readonly answers: AnswerRouter;
  readonly push: StreamPush;
  readonly standalone: StandaloneStreams | undefined;
  close(): Promise<void>;
}

/**
 * Builds the mechanism that lets any instance serve a 2025-era session's server-to-client
 * traffic: answers routed to the instance that asked, messages pushed to the instance holding
 * the client's stream. Knows no SDK: the transport glue (`RoutedServerTransport` for SDK v1)
 * and the HTTP handler call it.
 */
export function createCrossInstance(options: CrossInstanceOptions): CrossInstance {
  const instanceId = randomUUID();
  const metrics = crossInstanceMetrics(options.registry);
  const channels: Channels =
    options.redis === undefined
      ? new LocalChannels()
      : new RedisChannels(options.redis, options.logger);
  const shared = { redis: options.redis, channels, instanceId, metrics, logger: options.logger };
  const answers = new AnswerRouter({ ...shared, ttlMs: options.answerTtlMs ?? 3_600_000 });
  const push = new StreamPush(shared);
  const standalone =
    options.events === undefined
      ? undefined
      : new StandaloneStreams({
          events: options.events,
          push,
          metrics,
          ...(options.retryIntervalMs === undefined
            ? {}
            : { retryIntervalMs: options.retryIntervalMs }),
          ...(options.keepAliveMs === undefined ? {} : { keepAliveMs: options.keepAliveMs }),
        });
  let closing: Promise<void> | undefined;
  return {
    instanceId,
    metrics,
    answers,
    push,
    standalone,
    close() {
      closing ??= (async () => {
        standalone?.close();
        push.close();
        await answers.close();
        await channels.close();
      })();
      return closing;
    },
  };
}
