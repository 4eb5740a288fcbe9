/**
 * `npm start`: builds dist/ with `tsc -p tsconfig.build.json` when it is missing or older than
 * src/, then runs the reference server in this process's place (signals reach it directly).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const entry = path.join(root, "dist", "server", "main.js");

function newestMtime(dir) {
  let newest = 0;
  for (const item of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, item.name);
    const time = item.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs;
    if (time > newest) newest = time;
  }
  return newest;
}

function builtAt() {
  return existsSync(entry) ? statSync(entry).mtimeMs : 0;
}

const sources = newestMtime(path.join(root, "src"));
if (builtAt() < sources) {
  console.info("[mcp-server] building dist/ (npx tsc -p tsconfig.build.json)");
  const build = spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit",
    shell: process.platform === "win32",
  });
  if (build.status !== 0) {
    console.error("[mcp-server] build failed");
    process.exit(build.status ?? 1);
  }
}

const child = spawn(process.execPath, [entry], { stdio: "inherit", env: process.env });
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(signal, () => child.kill(signal));
}
child.on("exit", (code, signal) => {
  process.exit(code ?? (signal === null ? 1 : 128 + (signal === "SIGTERM" ? 15 : 2)));
});
