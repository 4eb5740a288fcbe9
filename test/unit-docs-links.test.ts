/**
 * Every relative link of README.md and docs/ resolves: the file (or folder) exists, and a
 * `#fragment` into a Markdown file names one of its headings (GitHub's anchors).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return markdownFiles(full);
    return entry.name.endsWith(".md") ? [full] : [];
  });
}

/** The text outside fenced code blocks and inline code spans. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").replace(/`[^`\n]*`/g, "");
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to dashes, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const withoutCode = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");
  for (const m of withoutCode.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = (m[1] ?? "")
      .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const count = seen.get(text) ?? 0;
    seen.set(text, count + 1);
    anchors.add(count === 0 ? text : `${text}-${count}`);
  }
  return anchors;
}

interface Link {
  file: string;
  target: string;
}

function relativeLinks(file: string): Link[] {
  const text = prose(readFileSync(file, "utf8"));
  const links: Link[] = [];
  for (const m of text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = m[1] ?? "";
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, ...
    links.push({ file, target });
  }
  for (const m of text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)) {
    const target = m[1] ?? "";
    if (!/^[a-z][a-z0-9+.-]*:/i.test(target)) links.push({ file, target });
  }
  return links;
}

const files = [path.join(ROOT, "README.md"), ...markdownFiles(path.join(ROOT, "docs"))];

describe("documentation links", () => {
  it("computes GitHub's anchors", () => {
    const anchors = anchorsOf(
      "# The `Lock`\n## `createMcpHttpHandler(options)`\n```sh\n# not a heading\n```\n### Targets\n### Targets\n",
    );
    expect([...anchors]).toEqual([
      "the-lock",
      "createmcphttphandleroptions",
      "targets",
      "targets-1",
    ]);
  });

  it("finds the README and the docs", () => {
    expect(files.length).toBeGreaterThan(5);
    expect(relativeLinks(path.join(ROOT, "README.md")).length).toBeGreaterThan(5);
  });

  it.each(files.map((f) => [path.relative(ROOT, f), f]))(
    "%s: every relative link resolves",
    (_, file) => {
      const broken: string[] = [];
      for (const { target } of relativeLinks(file)) {
        const [rawPath = "", fragment] = target.split("#", 2);
        const pathPart = decodeURIComponent(rawPath);
        const resolved = pathPart === "" ? file : path.resolve(path.dirname(file), pathPart);
        if (!resolved.startsWith(ROOT) || !existsSync(resolved)) {
          broken.push(`${target}: no such file`);
          continue;
        }
        if (fragment === undefined || fragment === "") continue;
        if (statSync(resolved).isDirectory() || !resolved.endsWith(".md")) {
          broken.push(`${target}: a fragment into a file that is not Markdown`);
          continue;
        }
        if (!anchorsOf(readFileSync(resolved, "utf8")).has(fragment.toLowerCase()))
          broken.push(`${target}: no heading with that anchor`);
      }
      expect(broken).toEqual([]);
    },
  );
});
