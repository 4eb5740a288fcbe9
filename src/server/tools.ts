/**
 * The demo tools of the reference server: each one exercises the session store.
 *
 * - `notes_put` / `notes_get`: data of the MCP session, kept in the session's own record (field
 *   `notes`, next to the integration's `mcp` field), so any instance sees it and DELETE ends it.
 * - `counter_increment`: a counter shared by every session and instance, incremented under
 *   the session store's `withLock`; returns the value and the lock's fencing token. The value
 *   lives in the tools' own store (`data`), so the sessions gauge counts MCP sessions only.
 * - `slow_task`: a long call that reports progress notifications.
 * - `slow_task_async`: the same work under the name the 2026-07-28 tools use for a task; a
 *   2025-era session has no tasks extension, so the call waits for the result.
 *
 * SDK v2's `McpServer`, served to 2025-era sessions through `createLegacyHttpHandler`.
 */
import type { McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";
import type { SessionStore } from "../types.js";
import { json, registerSlowTask, sleep, slowInput } from "./tool-kit.js";

/** Counters live 30 days after their last increment. */
const COUNTER_TTL_SECONDS = 30 * 24 * 3600;
const MAX_NOTES = 100;

interface SessionData {
  notes?: Record<string, string>;
  [field: string]: unknown;
}

export interface DemoToolsContext {
  /** The MCP sessions' store: notes, and the counter's lock. */
  store: SessionStore;
  /** The tools' own data (counters): another prefix, not sessions. */
  data: SessionStore;
  /** Session TTL in seconds (slid by each write). */
  sessionTtl: number;
  /** Name of this instance (host:port), returned by the tools so clients see who served them. */
  instance: string;
}

/** Registers the demo tools on `server` (one MCP session's server). */
export function registerDemoTools(server: McpServer, context: DemoToolsContext): void {
  const { store, data, sessionTtl, instance } = context;

  server.registerTool(
    "notes_put",
    {
      title: "Store a note",
      description:
        "Stores a note under a key in this MCP session's data (shared by every server instance).",
      inputSchema: z.object({
        key: z.string().min(1).max(128).describe("Name of the note"),
        value: z.string().max(10_000).describe("Text of the note"),
      }),
    },
    async ({ key, value }, ctx) => {
      const sessionId = requireSession(ctx.sessionId);
      const data = await store.updateSession<SessionData>(
        sessionId,
        (current) => {
          // The session was deleted (or expired) meanwhile: refuse rather than recreate it.
          if (current === null) throw new Error("the MCP session no longer exists");
          const notes = { ...(current.notes ?? {}) };
          if (!(key in notes) && Object.keys(notes).length >= MAX_NOTES) {
            throw new Error(`at most ${MAX_NOTES} notes per session`);
          }
          notes[key] = value;
          return { ...current, notes };
        },
        { ttl: sessionTtl },
      );
      return json({ key, count: Object.keys(data.notes ?? {}).length, instance });
    },
  );

  server.registerTool(
    "notes_get",
    {
      title: "Read notes",
      description: "Reads one note (by key) or all notes of this MCP session.",
      inputSchema: z.object({
        key: z.string().min(1).max(128).optional().describe("Name of the note; all when absent"),
      }),
    },
    async ({ key }, ctx) => {
      const sessionId = requireSession(ctx.sessionId);
      const data = await store.getSession<SessionData>(sessionId);
      const notes = data?.notes ?? {};
      if (key === undefined) return json({ notes, instance });
      return json({ key, value: Object.hasOwn(notes, key) ? notes[key] : null, instance });
    },
  );

  server.registerTool(
    "counter_increment",
    {
      title: "Increment a shared counter",
      description:
        "Increments a counter shared by all sessions and instances, under a distributed lock; returns the new value and the lock's fencing token.",
      inputSchema: z.object({
        name: z
          .string()
          .regex(/^[\w.-]{1,64}$/)
          .default("default")
          .describe("Counter name (letters, digits, _ . -)"),
      }),
    },
    async ({ name }) => {
      const id = `counter:${name}`;
      const result = await store.withLock(
        id,
        async (lock) => {
          const current = (await data.getSession<{ value: number }>(id))?.value ?? 0;
          const value = current + 1;
          await data.setSession(
            id,
            { value, fencingToken: lock.fencingToken },
            {
              ttl: COUNTER_TTL_SECONDS,
            },
          );
          return { name, value, fencingToken: lock.fencingToken, instance };
        },
        { ttl: 10_000, waitTimeout: 10_000 },
      );
      return json(result);
    },
  );

  registerSlowTask(server, instance);

  server.registerTool(
    "slow_task_async",
    {
      title: "A long call as a task",
      description:
        "The work of slow_task; on protocol 2026-07-28 with the tasks extension it runs as a task to poll, in a 2025-era session the call waits for the result.",
      inputSchema: slowInput,
    },
    async ({ steps, stepMs }, ctx) => {
      for (let step = 1; step <= steps; step++) await sleep(stepMs, ctx.mcpReq.signal);
      return json({ steps, stepMs, instance });
    },
  );
}

function requireSession(sessionId: string | undefined): string {
  if (sessionId === undefined) throw new Error("this tool needs an MCP session");
  return sessionId;
}
