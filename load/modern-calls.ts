/**
 * Protocol 2026-07-28 traffic: no session, no initialize, the `_meta` envelope on every request;
 * what a client keeps between calls is a handle the server minted. Each iteration starts a
 * counter and a notebook, uses each once more (so the second call may land on the other instance
 * behind the balancer and must still find them). Arrivals at a constant rate, as
 * session-lifecycle.ts does for 2025-era sessions.
 *
 *   k6 run load/modern-calls.ts                                    # the stack's nginx, :8080
 *   docker compose run --rm k6 run /load/modern-calls.ts           # inside the stack
 *   RATE=50 DURATION=5m k6 run -e BASE_URL=http://localhost:8000 load/modern-calls.ts
 */
import { check } from "k6";
import exec from "k6/execution";
import { Trend } from "k6/metrics";
import type { Options } from "k6/options";
import { callModernTool } from "./lib/mcp-client.ts";

const BASE_URL = __ENV.BASE_URL ?? "http://localhost:8080";
const MCP_URL = `${BASE_URL}/mcp`;

/** Wall time of one iteration's four tool calls. */
const sequenceDuration = new Trend("mcp_modern_sequence_duration", true);

export const options: Options = {
  scenarios: {
    modern: {
      executor: "constant-arrival-rate",
      rate: Number(__ENV.RATE ?? 20),
      timeUnit: "1s",
      duration: __ENV.DURATION ?? "1m",
      preAllocatedVUs: 20,
      maxVUs: 200,
    },
  },
  thresholds: {
    http_req_failed: ["rate<0.01"],
    "http_req_duration{expected_response:true}": ["p(99)<500", "p(95)<250"],
    "http_req_duration{mcp_era:2026-07-28}": ["p(99)<500"],
    checks: ["rate>0.99"],
    mcp_modern_sequence_duration: ["p(99)<2000"],
    dropped_iterations: [{ threshold: "count<10", abortOnFail: false }],
  },
};

export default function (): void {
  const started = Date.now();
  const first = callModernTool(MCP_URL, "counter_increment");
  const counter = first?.handle("counter");
  if (counter !== undefined) {
    const second = callModernTool(MCP_URL, "counter_increment", { counter });
    check(second, {
      "counter handle: found and incremented on any instance": (r) =>
        r?.text?.includes('"value":2') === true,
    });
  }
  const value = `value-${exec.vu.idInTest}-${started}`;
  const notebook = callModernTool(MCP_URL, "notes_put", { key: "k", value })?.handle("notebook");
  if (notebook !== undefined) {
    const read = callModernTool(MCP_URL, "notes_get", { notebook, key: "k" });
    check(read, {
      "notebook handle: reads what notes_put wrote": (r) => r?.text?.includes(value) === true,
    });
  }
  sequenceDuration.add(Date.now() - started);
}
