import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

// @merge/strategies runs in browsers and workers as is: its sources may import only @merge/lora
// and each other, and must not touch Node-only globals, files or the network.
const SRC = join(import.meta.dirname, "..", "src");
const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bnode:/, "a node: module"],
  [/\bBuffer\b/, "Buffer"],
  [/\bprocess\./, "process"],
  [/\brequire\s*\(/, "require()"],
  [/\bfetch\s*\(/, "fetch()"],
  [/\bXMLHttpRequest\b|\bWebSocket\b/, "network"],
  [/\b__dirname\b|\bimport\.meta\.(url|dirname)\b/, "file paths"],
];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory()
      ? sources(join(dir, d.name))
      : d.name.endsWith(".ts")
        ? [join(dir, d.name)]
        : [],
  );
}

describe("@merge/strategies sources are runtime-neutral", () => {
  const files = sources(SRC);
  it("finds the sources", () => expect(files.length).toBeGreaterThan(5));
  for (const file of files) {
    it(relative(SRC, file), () => {
      const text = readFileSync(file, "utf8");
      const specifiers = [
        ...text.matchAll(
          /(?:import|export)[^"';]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']/g,
        ),
      ].map((m) => m[1] ?? m[2]!);
      for (const s of specifiers) {
        expect(
          s.startsWith(".") || s === "@merge/lora",
          `${relative(SRC, file)} imports "${s}"`,
        ).toBe(true);
      }
      for (const [re, what] of FORBIDDEN)
        expect(re.test(text), `${relative(SRC, file)} uses ${what}`).toBe(false);
    });
  }
});
