import {
  lockSuite,
  redisManagerFixture,
  redisStoreFixture,
  type Variant,
} from "./suites/lock-suite.js";

// The memory variants run the same suite in locks-memory.test.ts (the unit project).
const variants: Variant[] = [
  { name: "redlock manager, 1 node", nodes: 1, make: redisManagerFixture(1) },
  { name: "redlock manager, 3 nodes", nodes: 3, make: redisManagerFixture(3) },
  { name: "redis store, 1 node", nodes: 1, make: redisStoreFixture() },
  { name: "redis store, 3 lock nodes", nodes: 3, make: redisStoreFixture() },
];

for (const variant of variants) lockSuite(variant);
