import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Two cores: more workers only add contention to suites that spawn redis-server.
    maxWorkers: 2,
    // A test that leaves a timer or an unhandled rejection behind fails the run.
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
