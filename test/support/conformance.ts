/**
 * Runs an official MCP conformance suite's CLI (it needs Node 22: `npx -y node@22`) against a
 * server and returns the checks it recorded, by scenario. Bounded: the run is killed after
 * `timeoutMs`.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** One check as the suite writes it to `<scenario dir>/checks.json`. */
export interface ConformanceCheck {
  id: string;
  status: string;
  errorMessage?: string;
  details?: { result?: { isError?: boolean; content?: Array<{ text?: string }> } };
}

export async function runConformanceCli(
  cli: string,
  args: string[],
  timeoutMs: number,
): Promise<Record<string, ConformanceCheck[]>> {
  const out = mkdtempSync(path.join(os.tmpdir(), "mcp-conformance-"));
  try {
    const child = spawn("npx", ["-y", "node@22", cli, "server", ...args, "-o", out], {
      cwd: out,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    child.stdout.on("data", (c: Buffer) => {
      log += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      log += c.toString();
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => child.once("exit", () => resolve())),
      new Promise<void>((_, reject) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`the conformance run did not end within ${timeoutMs} ms:\n${log}`));
        }, timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    const scenarios: Record<string, ConformanceCheck[]> = {};
    for (const dir of readdirSync(out)) {
      const match = /^server-(.+)-\d{4}-\d{2}-\d{2}T/.exec(dir);
      if (match?.[1] === undefined) continue;
      scenarios[match[1]] = JSON.parse(readFileSync(path.join(out, dir, "checks.json"), "utf8"));
    }
    if (Object.keys(scenarios).length === 0) throw new Error(`no scenario results:\n${log}`);
    return scenarios;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** `id: message` of each check with the given status. */
export function messagesOf(checks: ConformanceCheck[], status: string): string[] {
  return checks.filter((c) => c.status === status).map((c) => `${c.id}: ${c.errorMessage ?? ""}`);
}
