import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/**/*.test.ts"],
          exclude: ["test/integration/**"],
        },
      },
      {
        test: {
          // One real control plane (test/cluster/) for every integration file;
          // global setup fails the run if it cannot start, never skips.
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/cluster/global-setup.ts"],
          // Files share the cluster's scheduler and node capacity; run them one at a time.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
