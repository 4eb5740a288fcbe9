import { defineConfig } from "vitest/config";

/**
 * Three projects, by what a test needs: `unit` nothing but Node (seconds, any machine); `redis`
 * spawns redis-server processes; `ops` needs the built package and system binaries (prometheus,
 * promtool, nginx) or runs the reference server. `npm test` runs all three.
 */
const unit = [
  "test/conformance-memory.test.ts",
  "test/locks-memory.test.ts",
  "test/bench-report.test.ts",
  "test/mcp-http.test.ts",
  "test/telemetry-public-api.test.ts",
  "test/telemetry-safely.test.ts",
  "test/locks-guarantees-doc.test.ts",
  "test/unit-*.test.ts",
];
const ops = [
  "test/ops-*.test.ts",
  "test/server*.test.ts",
  "test/conformance-mcp*.test.ts",
  "test/conformance-2026*.test.ts",
  "test/package*.test.ts",
  "test/mcp-v2-guard*.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Two cores: more workers only add contention to suites that spawn redis-server.
    maxWorkers: 2,
    // A test that leaves a timer or an unhandled rejection behind fails the run.
    dangerouslyIgnoreUnhandledErrors: false,
    projects: [
      { extends: true, test: { name: "unit", include: unit } },
      { extends: true, test: { name: "ops", include: ops } },
      {
        extends: true,
        test: { name: "redis", include: ["test/**/*.test.ts"], exclude: [...unit, ...ops] },
      },
    ],
  },
});
