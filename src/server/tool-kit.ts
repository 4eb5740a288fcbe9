/**
 * What the demo tools of both protocol eras share: their result shape, an abortable sleep, and
 * `slow_task` (the same long call with progress in 2025-era sessions and in 2026-07-28).
 */
import type { CallToolResult, McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";

/** A tool result as JSON text and as structured content. */
export function json(value: Record<string, unknown>): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(value) }], structuredContent: value };
}

/** Waits `ms`, or rejects ("cancelled") as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new Error("cancelled"));
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(new Error("cancelled"));
    }
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/** Arguments of `slow_task` and `slow_task_async`. */
export const slowInput = z.object({
  steps: z.number().int().min(1).max(100).default(5).describe("Number of steps"),
  stepMs: z.number().int().min(0).max(10_000).default(200).describe("Duration of a step, ms"),
});

/** `slow_task`: steps x stepMs of work, a progress notification after each step. */
export function registerSlowTask(server: McpServer, instance: string): void {
  server.registerTool(
    "slow_task",
    {
      title: "A long call with progress",
      description:
        "Works for steps x stepMs milliseconds and sends a progress notification after each step (pass a progressToken).",
      inputSchema: slowInput,
    },
    async ({ steps, stepMs }, ctx) => {
      const progressToken = ctx.mcpReq._meta?.progressToken;
      for (let step = 1; step <= steps; step++) {
        await sleep(stepMs, ctx.mcpReq.signal);
        if (progressToken !== undefined) {
          await ctx.mcpReq.notify({
            method: "notifications/progress",
            params: {
              progressToken,
              progress: step,
              total: steps,
              message: `step ${step} on ${instance}`,
            },
          });
        }
      }
      return json({ steps, stepMs, instance });
    },
  );
}
