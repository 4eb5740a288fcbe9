/**
 * Writes the reference server's production package.json (and the lockfile beside it) into the
 * directory given as argument, for the Docker image: the library's dependencies plus the packages
 * the server loads itself (the MCP SDKs v1 and v2, zod, the OpenTelemetry SDK), pinned to the versions of
 * package-lock.json. `npm install --omit=dev` there installs nothing else: no test runner, no
 * benchmark tools, no linter.
 *
 *   node deploy/server-package.mjs /prod && cd /prod && npm install --omit=dev
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** What dist/server/ and dist/telemetry/sdk.js import beyond the library's dependencies. */
const SERVER_PACKAGES = [
  // SDK v1 serves the 2025-era sessions, SDK v2 protocol 2026-07-28.
  "@modelcontextprotocol/sdk",
  "@modelcontextprotocol/server",
  "zod",
  "@opentelemetry/api",
  "@opentelemetry/sdk-node",
  "@opentelemetry/instrumentation-ioredis",
];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = process.argv[2];
if (!out) {
  console.error("usage: node deploy/server-package.mjs <output directory>");
  process.exit(2);
}
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
const lock = JSON.parse(readFileSync(path.join(root, "package-lock.json"), "utf8"));
const dependencies = { ...pkg.dependencies };
for (const name of SERVER_PACKAGES) {
  const version = lock.packages?.[`node_modules/${name}`]?.version;
  if (!version) {
    console.error(`${name} is not in package-lock.json: add it (npm install -D ${name})`);
    process.exit(1);
  }
  dependencies[name] = version;
}
mkdirSync(out, { recursive: true });
writeFileSync(
  path.join(out, "package.json"),
  `${JSON.stringify(
    {
      name: `${pkg.name}-server`,
      version: pkg.version,
      private: true,
      type: "module",
      engines: pkg.engines,
      dependencies,
    },
    null,
    2,
  )}\n`,
);
copyFileSync(path.join(root, "package-lock.json"), path.join(out, "package-lock.json"));
