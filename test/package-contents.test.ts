import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

interface PackedFile {
  path: string;
}

/** The bare package a specifier names: `@scope/name` or `name`, without its subpath. */
function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] as string);
}

/** Every package a built module imports, statically or dynamically. */
function importsOf(source: string): string[] {
  const found = new Set<string>();
  const pattern = /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["']([^"'./][^"']*)["']/g;
  for (const match of source.matchAll(pattern)) found.add(match[1] as string);
  return [...found];
}

describe("what `npm pack` ships", () => {
  let files: string[];

  beforeAll(async () => {
    if (!existsSync(join(root, "dist/index.js")))
      throw new Error("dist/ is missing: run `npm run build` (npm test does)");
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: root,
      timeout: 60_000,
    });
    const [packed] = JSON.parse(stdout) as [{ files: PackedFile[] }];
    files = packed.files.map((file) => file.path);
  });

  it("holds the library, its README and LICENSE, and no reference server", () => {
    expect(files).toContain("LICENSE");
    expect(files).toContain("README.md");
    expect(files).toContain("package.json");
    expect(files).toContain("dist/index.js");
    expect(files).toContain("dist/index.d.ts");
    expect(files).toContain("dist/mcp/index.js");
    expect(files).toContain("dist/telemetry/sdk.js");
    expect(files.filter((file) => file.startsWith("dist/server/"))).toEqual([]);
    expect(
      files.filter((file) => !/^(dist\/|LICENSE$|README\.md$|package\.json$)/.test(file)),
    ).toEqual([]);
  });

  it("imports no package that package.json does not declare", () => {
    const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      peerDependencies?: Record<string, string>;
    };
    const declared = new Set([
      "mcp-session-store",
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
    ]);
    const builtins = new Set(builtinModules);
    const undeclared: string[] = [];
    for (const file of files.filter((name) => name.endsWith(".js"))) {
      for (const specifier of importsOf(readFileSync(join(root, file), "utf8"))) {
        const name = packageOf(specifier);
        if (specifier.startsWith("node:") || builtins.has(name)) continue;
        if (!declared.has(name)) undeclared.push(`${file} imports ${specifier}`);
      }
    }
    expect(undeclared).toEqual([]);
  });

  it("ships source maps that carry their sources", () => {
    const maps = files.filter((file) => file.endsWith(".js.map"));
    expect(maps.length).toBeGreaterThan(0);
    const broken: string[] = [];
    for (const file of maps) {
      const map = JSON.parse(readFileSync(join(root, file), "utf8")) as {
        sources: string[];
        sourcesContent?: (string | null)[];
      };
      const complete =
        map.sourcesContent !== undefined &&
        map.sourcesContent.length === map.sources.length &&
        map.sourcesContent.every((content) => typeof content === "string" && content.length > 0);
      if (!complete) broken.push(file);
    }
    expect(broken).toEqual([]);
  });
});
