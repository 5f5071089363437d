import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { writeFileAtomic, writeTextAtomic } from "../src/index.js";
import { withTempDir } from "./helpers.js";

describe("writeFileAtomic", () => {
  it("writes bytes, text and callback content, creating the folder, leaving no temp file", async () => {
    await withTempDir(async (dir) => {
      const sub = join(dir, "a", "b");
      await writeFileAtomic(join(sub, "bytes.bin"), Uint8Array.from([0, 1, 255]));
      await writeFileAtomic(join(sub, "text.txt"), "héllo\n");
      await writeTextAtomic(join(sub, "text2.txt"), "x");
      await writeFileAtomic(join(sub, "cb.txt"), async (handle) => {
        await handle.write("cb");
      });
      expect([...(await readFile(join(sub, "bytes.bin")))]).toEqual([0, 1, 255]);
      expect(await readFile(join(sub, "text.txt"), "utf8")).toBe("héllo\n");
      expect(await readFile(join(sub, "text2.txt"), "utf8")).toBe("x");
      expect(await readFile(join(sub, "cb.txt"), "utf8")).toBe("cb");
      expect((await readdir(sub)).sort()).toEqual(["bytes.bin", "cb.txt", "text.txt", "text2.txt"]);
    });
  });

  it("a failing write leaves the old file untouched and removes the temp file", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "f.txt");
      await writeFile(path, "old");
      await expect(
        writeFileAtomic(path, async (handle) => {
          await handle.write("partial");
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      expect(await readFile(path, "utf8")).toBe("old");
      expect(await readdir(dir)).toEqual(["f.txt"]);
      // A rename onto a folder fails too, without leaving debris.
      await mkdir(join(dir, "d", "x"), { recursive: true });
      await expect(writeFileAtomic(join(dir, "d"), "y")).rejects.toThrow();
      expect((await readdir(dir)).sort()).toEqual(["d", "f.txt"]);
    });
  });
});
