// The quick start's `npm run demo` must keep working: a real dispatcher, the real
// smoke trainer, over HTTP.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { expect, it } from "vitest";

it("npm run demo runs the Full Example job to completion on the local executor", () => {
  const result = spawnSync(process.execPath, [resolve(import.meta.dirname, "../../dispatcher/demo.ts")], {
    encoding: "utf8",
    timeout: 60_000,
  });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  expect(result.stdout).toMatch(/epoch 5\/5 loss=/);
  expect(result.stdout).toMatch(/job 123 completed/);
  expect(result.stdout).toMatch(/"phase": "completed"/);
}, 70_000);
