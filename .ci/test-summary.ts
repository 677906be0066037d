// Reads vitest's JSON report, and the results of suites vitest does not run (the Schemathesis
// fuzz runs, test/fuzz/run.sh), and prints the one line CI reads: "N passed, N failed".
// A run that executed no test, or skipped any, fails: a missing component must never pass quietly.
import { readFileSync } from "node:fs";

interface VitestReport {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  success: boolean;
}

/** What test/fuzz/run.sh writes: one suite, counted like tests. */
interface SuiteResult {
  suite: string;
  passed: number;
  failed: number;
}

const [path, ...suitePaths] = process.argv.slice(2);
if (!path) throw new Error("usage: test-summary.ts <vitest-json-report> [suite-result.json ...]");
const report = JSON.parse(readFileSync(path, "utf8")) as VitestReport;
const suites = suitePaths.map((suitePath): SuiteResult => {
  try {
    return JSON.parse(readFileSync(suitePath, "utf8")) as SuiteResult;
  } catch {
    // A suite that left no result did not finish: it counts as failed.
    return { suite: suitePath, passed: 0, failed: 1 };
  }
});
for (const suite of suites) if (suite.failed > 0) console.error(`${suite.suite} failed`);
const passed = report.numPassedTests + suites.reduce((sum, suite) => sum + suite.passed, 0);
const failed = report.numFailedTests + suites.reduce((sum, suite) => sum + suite.failed, 0);
const skipped = report.numPendingTests + report.numTodoTests;
if (report.numTotalTests === 0) console.error("no test ran");
if (skipped > 0) console.error(`${skipped} tests were skipped; CI does not allow skips`);
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
process.exitCode = report.success && report.numTotalTests > 0 && skipped === 0 && failed === 0 ? 0 : 1;
