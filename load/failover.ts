/**
 * Steady load for a chaos run: long-lived sessions (one per VU) doing write/read round trips
 * through nginx's round robin, so consecutive requests of one session land on different
 * instances. While it runs, kill things (README.md, "Failover drill"):
 *
 *   docker compose run --rm k6 run /load/failover.ts &
 *   docker compose kill redis-2          # one Redlock node: locks keep working (quorum 2/3)
 *   docker compose restart app-1         # sessions continue on app-2
 *
 * Thresholds allow the short error burst of a failover, not a lasting outage.
 */
import { check } from "k6";
import exec from "k6/execution";
import { Rate } from "k6/metrics";
import type { Options } from "k6/options";
import { callTool, closeSession, type McpSession, openSession } from "./lib/mcp-client.ts";

const BASE_URL = __ENV.BASE_URL ?? "http://localhost:8080";
const MCP_URL = `${BASE_URL}/mcp`;
/** Iterations after which a VU ends its session and opens a new one. */
const SESSION_ITERATIONS = Number(__ENV.SESSION_ITERATIONS ?? 50);

/** Round trips that read back what they wrote. */
const roundTrips = new Rate("mcp_round_trip_ok");

export const options: Options = {
  scenarios: {
    steady: {
      executor: "constant-arrival-rate",
      rate: Number(__ENV.RATE ?? 30),
      timeUnit: "1s",
      duration: __ENV.DURATION ?? "5m",
      preAllocatedVUs: 30,
      maxVUs: 150,
    },
  },
  thresholds: {
    http_req_failed: ["rate<0.05"],
    checks: ["rate>0.95"],
    mcp_round_trip_ok: [{ threshold: "rate>0.95", abortOnFail: true, delayAbortEval: "30s" }],
    "http_req_duration{expected_response:true}": ["p(99)<2000"],
  },
};

let session: McpSession | null = null;
let iterations = 0;

export default function (): void {
  session ??= openSession(MCP_URL);
  if (!session) {
    roundTrips.add(false);
    return;
  }
  const key = `failover-${exec.vu.idInTest}`;
  const value = `${exec.scenario.iterationInTest}`;
  callTool(session, "notes_put", { key, value });
  const read = callTool(session, "notes_get", { key });
  const ok = read?.includes(value) === true;
  roundTrips.add(ok);
  check(read, { "notes_get: reads what notes_put wrote": () => ok });
  // A session the servers forgot (404) is reopened on the next iteration.
  if (!ok) session = null;
  if (session && ++iterations % SESSION_ITERATIONS === 0) {
    closeSession(session);
    session = null;
  }
}
