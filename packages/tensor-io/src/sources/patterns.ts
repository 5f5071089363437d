/** File selection by names or globs (`files` option), matched like huggingface_hub's allow_patterns. */
import picomatch from "picomatch";

export function isGlob(pattern: string): boolean {
  return picomatch.scan(pattern).isGlob;
}

export function fileMatcher(patterns: readonly string[] | undefined): (file: string) => boolean {
  if (patterns === undefined) return () => true;
  const matchers = patterns.map((p) => picomatch(p, { dot: true }));
  return (file) => matchers.some((m) => m(file));
}
