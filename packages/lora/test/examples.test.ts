import { describe, expect, it, vi } from "vitest";

describe("README example", () => {
  it("examples/basic.ts runs", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    await import("../examples/basic.js");
    expect(log).toHaveBeenCalled();
    log.mockRestore();
  });
});
