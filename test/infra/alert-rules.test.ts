/**
 * The alert rules through promtool (Debian package `prometheus`): `check rules`
 * for syntax, `test rules` for behaviour. Fails, never skips, without promtool.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { METRIC } from "../../dispatcher/metric-names.ts";
import { TRAINING_ALERT_GROUPS } from "../../infra/monitoring/alert-rules.ts";
import { trainingDashboard } from "../../infra/monitoring/training-dashboard.ts";

const TEST_FILE = join(import.meta.dirname, "alert-rules.promtool.yaml");
/** The name the promtool test file's rule_files entry expects. */
const RULES_FILE = "training-alerts.rules.yaml";

const workdir = mkdtempSync(join(tmpdir(), "alert-rules-"));
afterAll(() => rmSync(workdir, { recursive: true, force: true }));
writeFileSync(join(workdir, RULES_FILE), stringify({ groups: TRAINING_ALERT_GROUPS }));
copyFileSync(TEST_FILE, join(workdir, "alert-rules.promtool.yaml"));

function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync("promtool", args, { cwd: workdir, encoding: "utf8", timeout: 30_000 });
  if (result.error) {
    throw new Error(`cannot run promtool (${result.error.message}): install it with \`apt-get install -y prometheus\``);
  }
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const ALERTS = TRAINING_ALERT_GROUPS.flatMap((group) => group.rules.map((rule) => rule.alert));

describe("promtool", () => {
  it("accepts the rules", () => {
    const { status, output } = promtool("check", "rules", RULES_FILE);
    expect(output).toContain(`SUCCESS: ${ALERTS.length} rules found`);
    expect(status, output).toBe(0);
  });

  it("passes the rule unit tests", () => {
    const { status, output } = promtool("test", "rules", "alert-rules.promtool.yaml");
    expect(status, output).toBe(0);
    expect(output).toContain("SUCCESS");
  });
});

describe("alert rules", () => {
  it("cover failures, queueing, callbacks and dispatcher health, each tested firing and quiet", () => {
    expect(ALERTS).toEqual([
      "TrainingJobFailureRateHigh",
      "TrainingJobsQueuedTooLong",
      "TrainingQueueStalled",
      "TrainingStatusCallbacksFailing",
      "TrainingDispatcherDown",
    ]);
    const tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] = parse(readFileSync(TEST_FILE, "utf8")).tests;
    const cases = tests.flatMap((test) => test.alert_rule_test);
    for (const alert of ALERTS) {
      const ofAlert = cases.filter((testCase) => testCase.alertname === alert);
      expect(
        ofAlert.some((testCase) => testCase.exp_alerts.length > 0),
        `${alert} fires somewhere`,
      ).toBe(true);
      expect(
        ofAlert.some((testCase) => testCase.exp_alerts.length === 0),
        `${alert} stays quiet somewhere`,
      ).toBe(true);
    }
  });

  it("and the dashboard query only metrics the dispatcher exports (or DCGM's and Prometheus' own)", () => {
    const exported = new Set(Object.values(METRIC).flatMap((name) => [name, `${name}_bucket`, `${name}_count`, `${name}_sum`]));
    const expressions = [
      ...TRAINING_ALERT_GROUPS.flatMap((group) => group.rules.map((rule) => rule.expr)),
      ...(trainingDashboard().panels as { targets: { expr: string }[] }[]).flatMap((panel) => panel.targets.map((target) => target.expr)),
    ];
    const queried = expressions.flatMap((expr) => expr.match(/\btraining_dispatcher_\w+/g) ?? []);
    expect(queried.length).toBeGreaterThan(0);
    expect(queried.filter((name) => !exported.has(name))).toEqual([]);
  });
});
