/**
 * `mcp-session-store/mcp` without `@modelcontextprotocol/sdk`, and `./mcp/v2` without
 * `@modelcontextprotocol/server`: a consumer project whose node_modules holds a private build of
 * this package and only the dependencies each case names.
 */
import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SUBPATHS = ["mcp-session-store/mcp", "mcp-session-store/mcp/v1", "mcp-session-store/mcp/v2"];

type Outcome = { exports: number } | { name: string; code: string; message: string };

const probe = (load: string) => `
const out = {};
for (const spec of ${JSON.stringify(SUBPATHS)}) {
  try {
    const m = ${load};
    out[spec] = { exports: Object.keys(m).length };
  } catch (e) {
    out[spec] = { name: e.name, code: e.code, message: e.message };
  }
}
const rootPkg = ${load.replace("spec", '"mcp-session-store"')};
out.root = typeof rootPkg.createSessionStore;
console.log(JSON.stringify(out));
`;

describe("a subpath whose SDK is not installed", () => {
  let dir: string;
  let modules: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "mss-guard-"));
    modules = join(dir, "node_modules");
    const pkg = join(modules, "mcp-session-store");
    mkdirSync(pkg, { recursive: true });
    // A private build: the shared dist/ may be older than the sources. tsc emits even when some
    // other file of the tree has a type error; that is not what this test is about.
    const out = join(pkg, "dist");
    await run(
      process.execPath,
      [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json", "--outDir", out],
      { cwd: root, timeout: 110_000 },
    ).catch((err: Error & { stdout?: string }) => {
      const emitted = ["index.js", "mcp/entry.js", "mcp/v2/entry.js"].every((f) =>
        existsSync(join(out, f)),
      );
      if (!emitted) throw new Error(`build failed: ${err.stdout ?? err.message}`);
    });
    cpSync(join(root, "package.json"), join(pkg, "package.json"));
    // The package's own dependencies, and its required peer; no SDK unless a case adds one.
    const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
    };
    for (const dep of [...Object.keys(manifest.dependencies ?? {}), "@opentelemetry/api"])
      link(dep);
    writeFileSync(join(dir, "import.mjs"), probe("await import(spec)"));
    writeFileSync(join(dir, "require.cjs"), `(async () => {${probe("require(spec)")}})();`);
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function link(dep: string): void {
    mkdirSync(dirname(join(modules, dep)), { recursive: true });
    symlinkSync(join(root, "node_modules", dep), join(modules, dep), "dir");
  }

  async function outcomes(): Promise<Array<Record<string, Outcome | string>>> {
    return Promise.all(
      ["import.mjs", "require.cjs"].map(async (file) => {
        const { stdout } = await run(process.execPath, [file], { cwd: dir, timeout: 20_000 });
        return JSON.parse(stdout.trim().split("\n").at(-1) as string);
      }),
    );
  }

  const missing = (pkg: string, range: string, subpath: string) => ({
    name: "SessionStoreError",
    code: "ERR_PEER_DEPENDENCY_MISSING",
    message: `${subpath} needs ${pkg}@${range}, which is not installed: run \`npm install ${pkg}@"${range}"\``,
  });
  const v1Missing = (subpath: string) => missing("@modelcontextprotocol/sdk", "^1.24.0", subpath);
  const v2Missing = missing("@modelcontextprotocol/server", "^2.4.0", "mcp-session-store/mcp/v2");

  it("neither SDK: each subpath names its package and range, from import and require; the root loads", async () => {
    for (const out of await outcomes()) {
      expect(out["mcp-session-store/mcp"]).toEqual(v1Missing("mcp-session-store/mcp"));
      expect(out["mcp-session-store/mcp/v1"]).toEqual(v1Missing("mcp-session-store/mcp"));
      expect(out["mcp-session-store/mcp/v2"]).toEqual(v2Missing);
      expect(out.root).toBe("function");
    }
  });

  it("only SDK v2: ./mcp/v2 loads, ./mcp names @modelcontextprotocol/sdk", async () => {
    link("@modelcontextprotocol/server");
    try {
      for (const out of await outcomes()) {
        expect(out["mcp-session-store/mcp"]).toEqual(v1Missing("mcp-session-store/mcp"));
        expect(out["mcp-session-store/mcp/v2"]).toEqual({ exports: expect.any(Number) });
        expect((out["mcp-session-store/mcp/v2"] as { exports: number }).exports).toBeGreaterThan(
          10,
        );
      }
    } finally {
      unlinkSync(join(modules, "@modelcontextprotocol/server"));
    }
  });

  it("only SDK v1: ./mcp and ./mcp/v1 load, ./mcp/v2 names @modelcontextprotocol/server", async () => {
    link("@modelcontextprotocol/sdk");
    try {
      for (const out of await outcomes()) {
        expect(out["mcp-session-store/mcp"]).toEqual({ exports: 10 });
        expect(out["mcp-session-store/mcp/v1"]).toEqual({ exports: 10 });
        expect(out["mcp-session-store/mcp/v2"]).toEqual(v2Missing);
      }
    } finally {
      unlinkSync(join(modules, "@modelcontextprotocol/sdk"));
    }
  });
});
