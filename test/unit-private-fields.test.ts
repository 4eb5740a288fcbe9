import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = new URL("../src/", import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/**
 * Members that ioredis, prom-client and the MCP SDKs do not document: reaching into them breaks
 * without an error on a minor upgrade. `_meta` is a protocol field, not a private member.
 */
const PRIVATE =
  /hashMap|bucketValues|_defaultLabels|_requestHandlers|_notificationHandlers|\.connector\b|\.stream\??\.destroy|\.isCluster\b|[\w)\]]\._(?!meta\b)[A-Za-z]/;

describe("src/", () => {
  it("reaches into no private or undocumented field of a dependency", () => {
    const files = sources(ROOT);
    expect(files.length).toBeGreaterThan(40);
    const hits = files.flatMap((file) =>
      readFileSync(file, "utf8")
        .split("\n")
        .map((line, i) => ({ line, at: `${relative(ROOT, file)}:${i + 1}` }))
        .filter(({ line }) => !/^\s*(\/\/|\*)/.test(line) && PRIVATE.test(line))
        .map(({ at, line }) => `${at}: ${line.trim()}`),
    );
    expect(hits).toEqual([]);
  });
});
