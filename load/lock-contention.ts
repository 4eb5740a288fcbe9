/**
 * Many virtual users increment ONE shared counter (`counter_increment`, which updates it under
 * the session store's lock). Each VU keeps its session for the whole run. Correctness check: the
 * values one VU reads back strictly increase (a lost update or a broken lock would repeat one).
 *
 *   k6 run load/lock-contention.ts
 *   VUS=100 DURATION=2m k6 run -e BASE_URL=http://localhost:8080 load/lock-contention.ts
 */
import { check } from "k6";
import { Counter } from "k6/metrics";
import type { Options } from "k6/options";
import { callTool, type McpSession, openSession } from "./lib/mcp-client.ts";

const BASE_URL = __ENV.BASE_URL ?? "http://localhost:8080";
const MCP_URL = `${BASE_URL}/mcp`;
const COUNTER = __ENV.COUNTER ?? "contended";

/** Increments whose returned value was not above the previous one seen by the same VU. */
const nonMonotonic = new Counter("mcp_counter_non_monotonic");

export const options: Options = {
  scenarios: {
    contention: {
      executor: "constant-vus",
      vus: Number(__ENV.VUS ?? 50),
      duration: __ENV.DURATION ?? "1m",
    },
  },
  thresholds: {
    "http_req_duration{mcp_tool:counter_increment}": ["p(99)<2000", "p(50)<500"],
    http_req_failed: ["rate<0.01"],
    checks: ["rate>0.99"],
    mcp_counter_non_monotonic: ["count==0"],
  },
};

// Per VU: k6 gives every VU its own copy of module state.
let session: McpSession | null = null;
let last = Number.NEGATIVE_INFINITY;

export default function (): void {
  session ??= openSession(MCP_URL);
  if (!session) return;
  const text = callTool(session, "counter_increment", { name: COUNTER });
  const value = Number(text?.match(/-?\d+/)?.[0]);
  const increased = Number.isFinite(value) && value > last;
  check(value, { "counter_increment: value increases": () => increased });
  if (Number.isFinite(value)) {
    if (!increased) nonMonotonic.add(1);
    last = value;
  }
}
