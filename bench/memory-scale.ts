/**
 * The memory store at scale: 1,000,000 sessions of 1 KB. Reports RSS once they are stored, and the
 * longest event-loop stall while all of them expire (the sweeper works in slices).
 *
 *   npm run bench:memory      (SESSIONS=1000000)
 */
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { createMemorySessionStore } from "../src/index.js";
import { knob } from "./quick.js";
import { writeResults } from "./store.js";

const SESSIONS = knob("SESSIONS", 1_000_000, 100_000);
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);

const store = createMemorySessionStore({ instrumentation: false });
const base = process.memoryUsage().rss;
const value = { data: "x".repeat(1000) };
const ttl = 30;
const fillStart = performance.now();
for (let i = 0; i < SESSIONS; i++) {
  // Each session is a distinct 1 KB value, as distinct sessions are.
  value.data = `${i}`.padEnd(1000, "x");
  await store.setSession(`session-${i}`, value, { ttl });
}
const fillSeconds = (performance.now() - fillStart) / 1000;
(globalThis as { gc?: () => void }).gc?.();
const rss = process.memoryUsage().rss;
console.error(`stored ${SESSIONS} in ${fillSeconds.toFixed(1)} s; rss ${mb(rss)} MB`);

// Wait for every session to expire, measuring the event loop: a 1 ms interval's worst gap, and the
// histogram of delays.
const gcPauses: number[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcPauses.push(entry.duration);
});
gcObserver.observe({ entryTypes: ["gc"] });
const histogram = monitorEventLoopDelay({ resolution: 5 });
histogram.enable();
let last = performance.now();
let worstGap = 0;
const ticker = setInterval(() => {
  const now = performance.now();
  worstGap = Math.max(worstGap, now - last);
  last = now;
}, 1);
// The last session expires ttl seconds after the fill ended; the sweeper runs every second.
const until = fillStart + fillSeconds * 1000 + ttl * 1000 + 3000;
while (performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 250));
const left = await (async () => {
  let n = 0;
  for await (const _ of store.listSessions()) n++;
  return n;
})();
clearInterval(ticker);
gcObserver.disconnect();
histogram.disable();
const result = {
  sessions: SESSIONS,
  payloadBytes: 1000,
  fillSeconds: Math.round(fillSeconds * 10) / 10,
  rssBaseMB: mb(base),
  rssMB: mb(rss),
  worstEventLoopGapMs: Math.round(worstGap * 10) / 10,
  eventLoopDelayMaxMs: Math.round((histogram.max / 1e6) * 10) / 10,
  eventLoopDelayP99Ms: Math.round((histogram.percentile(99) / 1e6) * 10) / 10,
  sessionsLeftAfterExpiry: left,
  longestGcPauseMs: Math.round(Math.max(0, ...gcPauses) * 10) / 10,
  rssAfterExpiryMB: mb(process.memoryUsage().rss),
};
await store.disconnect();
const md = `## Memory store at scale\n\n| sessions | RSS with all stored | worst event-loop gap while all expire | event-loop delay p99 |\n| ---: | ---: | ---: | ---: |\n| ${SESSIONS.toLocaleString("en-US")} x 1 KB | ${result.rssMB} MB | ${result.worstEventLoopGapMs} ms | ${result.eventLoopDelayP99Ms} ms |`;
writeResults("memory-scale", result, md);
console.log(JSON.stringify(result));
console.log(md);
