// Where an attempt's log is once some of a job's pods are gone: attempts numbered as GET counts them.
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { attemptLog } from "../../dispatcher/status/attempt-log.ts";
import type { JobStatus } from "../../dispatcher/status/status-model.ts";

const at = (seconds: number) => new Date(Date.UTC(2026, 10, 30, 12, 0, seconds)).toISOString();
const pod = (name: string, created: number): V1Pod => ({ metadata: { name, creationTimestamp: new Date(at(created)) } });

function status(attempts: number, transitions: JobStatus["transitions"], lastExitCode?: number): JobStatus {
  const last = transitions.at(-1) as JobStatus["transitions"][number];
  return {
    jobId: 7,
    executor: "kubernetes",
    name: "training-job-7",
    phase: last.phase,
    reason: last.reason,
    attempts,
    ...(lastExitCode !== undefined && { lastExitCode }),
    transitions,
  };
}

describe("attemptLog", () => {
  const stopped = status(
    1,
    [
      { phase: "pending", reason: "Created", at: at(0) },
      { phase: "running", reason: "Started", attempt: 1, at: at(2) },
      { phase: "stopped", reason: "StoppedByUser", attempt: 1, exitCode: 143, at: at(9) },
    ],
    143,
  );

  it("says a stopped job's attempt ran and its pod is gone, with its exit code, for the latest or the numbered attempt", () => {
    expect(attemptLog(stopped, [], undefined)).toEqual({ kind: "pods-gone", attempt: 1, exitCode: 143, status: stopped });
    expect(attemptLog(stopped, [], 1)).toEqual({ kind: "pods-gone", attempt: 1, exitCode: 143, status: stopped });
    expect(attemptLog(stopped, [], 2)).toEqual({ kind: "no-such-attempt", attempts: 1 });
  });

  it("finds the pods present as the latest attempts, and an earlier one's exit code in the history", () => {
    const retried = status(2, [
      { phase: "pending", reason: "Created", at: at(0) },
      { phase: "retrying", reason: "Error", attempt: 1, exitCode: 7, at: at(4) },
      { phase: "running", reason: "Started", attempt: 2, at: at(6) },
    ]);
    const second = pod("training-job-7-bbbbb", 5);
    expect(attemptLog(retried, [second], undefined)).toEqual({ kind: "pod", pod: second, attempt: 2 });
    expect(attemptLog(retried, [second], 1)).toEqual({ kind: "pods-gone", attempt: 1, exitCode: 7, status: retried });
  });

  it("has no output before any attempt", () => {
    const waiting = status(0, [{ phase: "pending", reason: "Created", at: at(0) }]);
    expect(attemptLog(waiting, [], undefined)).toEqual({ kind: "no-output-yet", status: waiting });
  });
});
