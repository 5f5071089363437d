// Shared vitest settings: resolve workspace packages to their TypeScript sources through the
// "source" export condition, so tests never depend on a prior build.
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["source", "import", "default"] },
  ssr: { resolve: { conditions: ["source", "import", "default"], externalConditions: ["source"] } },
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    passWithNoTests: true,
  },
});
