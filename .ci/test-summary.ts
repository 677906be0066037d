// Reads vitest's JSON report, and the results of suites vitest does not run: the Schemathesis fuzz runs
// (test/fuzz/run.sh, JSON) and pytest's JUnit XML (clients/python/ci.sh, *.xml), and prints the one line
// CI reads: "N passed, N failed", all of them counted together.
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

/** One suite's counts: what test/fuzz/run.sh writes, and what a JUnit XML report adds up to. */
interface SuiteResult {
  suite: string;
  passed: number;
  failed: number;
  skipped?: number;
}

/** Totals of every <testsuite> element of a JUnit XML report (failures and errors both count as failed). */
function junitResult(suite: string, xml: string): SuiteResult {
  let total = 0;
  let failed = 0;
  let skipped = 0;
  for (const [, attributes = ""] of xml.matchAll(/<testsuite\b([^>]*)>/g)) {
    const attribute = (name: string) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(attributes)?.[1] ?? 0);
    total += attribute("tests");
    failed += attribute("failures") + attribute("errors");
    skipped += attribute("skipped");
  }
  // A report that holds no test is a runner that ran nothing: that counts as a failure.
  if (total === 0) return { suite, passed: 0, failed: 1 };
  return { suite, passed: total - failed - skipped, failed, skipped };
}

function suiteResult(suitePath: string): SuiteResult {
  try {
    const text = readFileSync(suitePath, "utf8");
    return suitePath.endsWith(".xml") ? junitResult(suitePath, text) : (JSON.parse(text) as SuiteResult);
  } catch {
    // A suite that left no result did not finish: it counts as failed.
    return { suite: suitePath, passed: 0, failed: 1 };
  }
}

const [path, ...suitePaths] = process.argv.slice(2);
if (!path) throw new Error("usage: test-summary.ts <vitest-json-report> [suite-result.json | junit.xml ...]");
const report = JSON.parse(readFileSync(path, "utf8")) as VitestReport;
const suites = suitePaths.map(suiteResult);
for (const suite of suites) if (suite.failed > 0) console.error(`${suite.suite} failed`);
const sum = (count: (suite: SuiteResult) => number) => suites.reduce((total, suite) => total + count(suite), 0);
const passed = report.numPassedTests + sum((suite) => suite.passed);
const failed = report.numFailedTests + sum((suite) => suite.failed);
const skipped = report.numPendingTests + report.numTodoTests + sum((suite) => suite.skipped ?? 0);
if (report.numTotalTests === 0) console.error("no test ran");
if (skipped > 0) console.error(`${skipped} tests were skipped; CI does not allow skips`);
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
process.exitCode = report.success && report.numTotalTests > 0 && skipped === 0 && failed === 0 ? 0 : 1;
