/**
 * The runnable example of docs/locks-guarantees.md runs as written (against the sources) and
 * prints what the page says it prints.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DOC = path.join(ROOT, "docs/locks-guarantees.md");

describe("docs/locks-guarantees.md", () => {
  it("the fencing example runs and the stale holder's write is refused", async () => {
    const text = readFileSync(DOC, "utf8");
    const example = /```ts\n([\s\S]*?)```/.exec(text)?.[1];
    expect(example).toContain('from "mcp-session-store"');
    const source = (example as string).replace(
      'from "mcp-session-store"',
      `from ${JSON.stringify(pathToFileURL(path.join(ROOT, "src/index.ts")).href)}`,
    );
    const dir = mkdtempSync(path.join(os.tmpdir(), "locks-doc-"));
    try {
      // .mts: an ES module wherever it sits, as in a project with "type": "module".
      const file = path.join(dir, "example.mts");
      writeFileSync(file, source);
      const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", file], {
        cwd: ROOT,
        timeout: 20_000,
      });
      expect(stdout.trim().split("\n")).toEqual([
        "fast holder wrote: true",
        "lease lost: true",
        "stale holder wrote: false",
        "stored: paid",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
