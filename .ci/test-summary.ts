// Reads vitest's JSON report, and any JUnit XML reports after it (pytest's), and prints the one line CI
// reads: "N passed, N failed", all runners counted together. A run that executed no test, skipped any,
// or whose JUnit report is missing, fails: a missing component must never pass quietly.
import { existsSync, readFileSync } from "node:fs";

interface VitestReport {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  success: boolean;
}

interface Counts {
  total: number;
  failed: number;
  skipped: number;
}

/** Totals of every <testsuite> element of a JUnit XML report (failures and errors both count as failed). */
export function junitCounts(xml: string): Counts {
  const counts: Counts = { total: 0, failed: 0, skipped: 0 };
  for (const [, attributes = ""] of xml.matchAll(/<testsuite\b([^>]*)>/g)) {
    const attribute = (name: string) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(attributes)?.[1] ?? 0);
    counts.total += attribute("tests");
    counts.failed += attribute("failures") + attribute("errors");
    counts.skipped += attribute("skipped");
  }
  return counts;
}

const [path, ...junitPaths] = process.argv.slice(2);
if (!path) throw new Error("usage: test-summary.ts <vitest-json-report> [<junit-xml-report>...]");
const report = JSON.parse(readFileSync(path, "utf8")) as VitestReport;
let total = report.numTotalTests;
let failed = report.numFailedTests;
let skipped = report.numPendingTests + report.numTodoTests;
let ok = report.success && report.numTotalTests > 0;
for (const junit of junitPaths) {
  if (!existsSync(junit)) {
    console.error(`no test report at ${junit}: that runner did not run`);
    ok = false;
    continue;
  }
  const counts = junitCounts(readFileSync(junit, "utf8"));
  if (counts.total === 0) {
    console.error(`${junit} holds no test`);
    ok = false;
  }
  total += counts.total;
  failed += counts.failed;
  skipped += counts.skipped;
}
const passed = total - failed - skipped;
if (total === 0) console.error("no test ran");
if (skipped > 0) console.error(`${skipped} tests were skipped; CI does not allow skips`);
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
process.exitCode = ok && total > 0 && skipped === 0 && failed === 0 ? 0 : 1;
