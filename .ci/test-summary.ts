// Reads vitest's JSON report and prints the one line CI reads: "N passed, N failed".
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

const path = process.argv[2];
if (!path) throw new Error("usage: test-summary.ts <vitest-json-report>");
const report = JSON.parse(readFileSync(path, "utf8")) as VitestReport;
const skipped = report.numPendingTests + report.numTodoTests;
if (report.numTotalTests === 0) console.error("no test ran");
if (skipped > 0) console.error(`${skipped} tests were skipped; CI does not allow skips`);
console.log(`${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
process.exitCode = report.success && report.numTotalTests > 0 && skipped === 0 && report.numFailedTests === 0 ? 0 : 1;
