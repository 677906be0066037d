// .ci/test-summary.ts: the closing "N passed, N failed" line of .ci/run counts vitest's JSON report and
// pytest's JUnit XML together, and fails on a missing report, an empty one, a failure or a skip.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const SCRIPT = join(import.meta.dirname, "..", "..", ".ci", "test-summary.ts");
const dir = mkdtempSync(join(tmpdir(), "test-summary-"));

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const vitest = file(
  "vitest.json",
  JSON.stringify({ numTotalTests: 10, numPassedTests: 10, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0, success: true }),
);
const junit = (tests: number, failures: number, errors: number, skipped: number) =>
  `<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="${errors}" failures="${failures}" skipped="${skipped}" tests="${tests}" time="1.0"><testcase classname="t" name="a" /></testsuite></testsuites>`;

function summary(...reports: string[]) {
  const result = spawnSync(process.execPath, [SCRIPT, ...reports], { encoding: "utf8" });
  return { line: result.stdout.trim(), status: result.status, stderr: result.stderr };
}

describe(".ci/test-summary.ts", () => {
  it("adds pytest's JUnit counts to vitest's", () => {
    expect(summary(vitest, file("ok.xml", junit(7, 0, 0, 0)))).toMatchObject({ line: "17 passed, 0 failed", status: 0 });
  });

  it("counts pytest failures and errors as failed and fails the run", () => {
    expect(summary(vitest, file("bad.xml", junit(7, 1, 2, 0)))).toMatchObject({ line: "14 passed, 3 failed", status: 1 });
  });

  it("fails on skipped pytest tests", () => {
    expect(summary(vitest, file("skip.xml", junit(7, 0, 0, 1)))).toMatchObject({ line: "16 passed, 0 failed, 1 skipped", status: 1 });
  });

  it("fails when pytest wrote no report or ran no test", () => {
    const missing = summary(vitest, join(dir, "absent.xml"));
    expect(missing).toMatchObject({ line: "10 passed, 1 failed", status: 1 });
    expect(missing.stderr).toMatch(/absent.xml failed/);
    expect(summary(vitest, file("empty.xml", junit(0, 0, 0, 0)))).toMatchObject({ line: "10 passed, 1 failed", status: 1 });
  });

  it("counts the fuzz suites' JSON results beside pytest's XML", () => {
    const fuzz = file("fuzz.json", JSON.stringify({ suite: "fuzz local", passed: 3, failed: 0 }));
    expect(summary(vitest, fuzz, file("ok2.xml", junit(2, 0, 0, 0)))).toMatchObject({ line: "15 passed, 0 failed", status: 0 });
  });

  it("still reads vitest's report alone", () => {
    expect(summary(vitest)).toMatchObject({ line: "10 passed, 0 failed", status: 0 });
  });
});
