import {
  lockSuite,
  memoryManagerFixture,
  memoryStoreFixture,
  type Variant,
} from "./suites/lock-suite.js";

const variants: Variant[] = [
  { name: "memory manager", nodes: 0, make: memoryManagerFixture },
  { name: "memory store", nodes: 0, make: memoryStoreFixture },
];

for (const variant of variants) lockSuite(variant);
