/**
 * One MCP session per iteration: initialize, notifications/initialized, a few tool calls that
 * read and write the session store, DELETE. Arrivals at a constant rate, so a slow server shows
 * up as latency and dropped iterations instead of fewer requests.
 *
 *   k6 run load/session-lifecycle.ts                                    # the stack's nginx, :8080
 *   docker compose run --rm k6 run /load/session-lifecycle.ts           # inside the stack
 *   RATE=50 DURATION=5m k6 run -e BASE_URL=http://localhost:8000 load/session-lifecycle.ts
 *                     # against `INIT_RATE_LIMIT=0 npm start` (each iteration opens a session)
 */
import { check } from "k6";
import exec from "k6/execution";
import { Trend } from "k6/metrics";
import type { Options } from "k6/options";
import { callTool, closeSession, openSession } from "./lib/mcp-client.ts";

const BASE_URL = __ENV.BASE_URL ?? "http://localhost:8080";
const MCP_URL = `${BASE_URL}/mcp`;

/** Wall time of one whole session, initialize to DELETE. */
const sessionDuration = new Trend("mcp_session_duration", true);

export const options: Options = {
  scenarios: {
    lifecycle: {
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
    "http_req_duration{mcp_method:tools/call}": ["p(99)<500"],
    checks: ["rate>0.99"],
    mcp_session_duration: ["p(99)<2000"],
    dropped_iterations: [{ threshold: "count<10", abortOnFail: false }],
  },
};

export default function (): void {
  const started = Date.now();
  const session = openSession(MCP_URL);
  if (!session) return;
  const key = `note-${exec.scenario.iterationInTest}`;
  const value = `value-${exec.vu.idInTest}-${started}`;
  callTool(session, "notes_put", { key, value });
  const read = callTool(session, "notes_get", { key });
  check(read, {
    "notes_get: reads what notes_put wrote": (text) => text?.includes(value) === true,
  });
  callTool(session, "counter_increment", { name: `lifecycle-${exec.vu.idInTest}` });
  closeSession(session);
  sessionDuration.add(Date.now() - started);
}
