import { describe } from "vitest";
import { createMemorySessionStore } from "../src/index.js";
import { storeConformanceSuite } from "./suites/store-conformance.js";

describe("memory backend", () => {
  storeConformanceSuite(() => ({
    name: "memory",
    shared: false,
    make: async (options) => createMemorySessionStore(options),
  }));
});
