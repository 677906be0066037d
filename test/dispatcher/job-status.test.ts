import type { CoreV1Event, V1Job } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { ANNOTATION } from "../../charts-ts/labels.ts";
import { deriveJobStatus, historyOf } from "../../dispatcher/status/job-status.ts";
import {
  at,
  CONFIGURATION_POLICY,
  cond,
  exited,
  failedCreate,
  failedScheduling,
  job,
  pod,
  running,
  successfulCreate,
  t,
  waiting,
} from "./status-fixtures.ts";

const phases = (status: ReturnType<typeof deriveJobStatus>) => status.transitions.map((tr) => tr.phase);

describe("deriveJobStatus", () => {
  it("is pending before the Job controller makes a pod", () => {
    const status = deriveJobStatus({ job: job(), pods: [] }, 7);
    expect(status).toMatchObject({ jobId: 7, name: "training-job-7", phase: "pending", reason: "Created", attempts: 0 });
    expect(status.transitions).toEqual([
      { phase: "pending", reason: "Created", message: "waiting for the Job controller and the scheduler to give it a pod", at: at(0) },
    ]);
  });

  it("is queued with the scheduler's reason when no node fits", () => {
    const message = "0/3 nodes are available: 2 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector.";
    const waitingPod = pod({ created: 1, phase: "Pending", unschedulable: message });
    const status = deriveJobStatus(
      { job: job(), pods: [waitingPod], events: [failedScheduling(waitingPod.metadata?.name ?? "", 1, message)] },
      7,
    );
    expect(status).toMatchObject({ phase: "queued", reason: "Unschedulable", message, attempts: 1 });
    expect(phases(status)).toEqual(["pending", "queued"]);
    expect(status.transitions.at(-1)?.at).toBe(at(1));
  });

  it("keeps the queued time whether the scheduler's event or the pod's condition arrives first", () => {
    const message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.";
    const waitingPod = pod({ created: 1, phase: "Pending", unschedulable: message });
    // events.k8s.io events carry eventTime with microseconds and no firstTimestamp; conditions have whole seconds.
    const event: CoreV1Event = {
      ...failedScheduling(waitingPod.metadata?.name ?? "", 1, message),
      firstTimestamp: undefined,
      eventTime: new Date(t(1).getTime() + 974) as unknown as CoreV1Event["eventTime"],
    };
    const withoutCondition = { ...waitingPod, status: { ...waitingPod.status, conditions: [] } };
    const eventFirst = deriveJobStatus({ job: job(), pods: [withoutCondition], events: [event] }, 7);
    const both = deriveJobStatus({ job: job(), pods: [waitingPod], events: [event] }, 7);
    expect(eventFirst.transitions.at(-1)).toMatchObject({ phase: "queued", at: at(1) });
    expect(both.transitions.at(-1)).toMatchObject({ phase: "queued", at: at(1) });
  });

  it("is starting while the image pulls, and says when the pull fails", () => {
    const pulling = deriveJobStatus(
      { job: job(), pods: [pod({ created: 1, phase: "Pending", scheduledAt: 2, state: waiting("ContainerCreating", "") })] },
      7,
    );
    expect(pulling).toMatchObject({ phase: "starting", reason: "ContainerCreating", node: "gpu-node-1" });
    const broken = deriveJobStatus(
      {
        job: job(),
        pods: [pod({ created: 1, phase: "Pending", scheduledAt: 2, state: waiting("ImagePullBackOff", 'Back-off pulling image "x"') })],
      },
      7,
    );
    expect(broken).toMatchObject({ phase: "starting", reason: "ImagePullBackOff", message: 'Back-off pulling image "x"' });
    // A change of reason is a transition of its own: the backend hears of the pull failing at once.
    expect(broken.transitions.map((tr) => `${tr.phase}/${tr.reason}`)).toEqual([
      "pending/Created",
      "starting/ContainerCreating",
      "starting/ImagePullBackOff",
    ]);
  });

  it("is running once the trainer container starts", () => {
    const status = deriveJobStatus({ job: job(), pods: [pod({ created: 1, phase: "Running", scheduledAt: 2, state: running(5) })] }, 7);
    expect(status).toMatchObject({ phase: "running", attempts: 1, node: "gpu-node-1" });
    expect(status.transitions).toEqual([
      { phase: "pending", reason: "Created", message: "waiting for the Job controller and the scheduler to give it a pod", at: at(0) },
      { phase: "starting", reason: "ContainerCreating", message: "attempt 1 scheduled on gpu-node-1", attempt: 1, at: at(2) },
      { phase: "running", reason: "Started", message: "attempt 1 running", attempt: 1, at: at(5) },
    ]);
  });

  it("is retrying after a failed attempt, with the attempt number and exit code, until the next attempt starts", () => {
    const first = pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(5, 20, 1) });
    const unscheduled = pod({ created: 22, phase: "Pending" });
    const status = deriveJobStatus({ job: job(), pods: [unscheduled, first] }, 7);
    expect(status).toMatchObject({
      phase: "retrying",
      reason: "Error",
      message: "attempt 1 exited with code 1",
      attempts: 2,
      lastExitCode: 1,
    });
    expect(phases(status)).toEqual(["pending", "starting", "running", "retrying"]);
    expect(status.transitions.at(-1)).toMatchObject({ attempt: 1, exitCode: 1, at: at(20) });
    const second = pod({ created: 22, phase: "Pending", scheduledAt: 23, state: waiting("ContainerCreating", "") });
    const starting = deriveJobStatus({ job: job(), pods: [second, first] }, 7);
    expect(starting).toMatchObject({ phase: "starting", reason: "ContainerCreating", attempts: 2 });
    // What was shown before stays: the retry is not rewritten when the next attempt is scheduled.
    expect(starting.transitions.slice(0, -1)).toEqual(status.transitions);
    expect(starting.transitions.at(-1)).toMatchObject({ attempt: 2, at: at(23) });
  });

  it("is retrying right after a failure, before the next pod exists", () => {
    const status = deriveJobStatus(
      { job: job(), pods: [pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(5, 20, 137, "OOMKilled") })] },
      7,
    );
    expect(status).toMatchObject({ phase: "retrying", reason: "OOMKilled", lastExitCode: 137 });
  });

  it("runs again on the second attempt and keeps the history", () => {
    const first = pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(5, 20, 1) });
    const second = pod({ created: 22, phase: "Running", scheduledAt: 23, state: running(25) });
    const status = deriveJobStatus({ job: job(), pods: [first, second] }, 7);
    expect(status).toMatchObject({ phase: "running", attempts: 2 });
    expect(phases(status)).toEqual(["pending", "starting", "running", "retrying", "starting", "running"]);
    expect(status.transitions.at(-1)).toMatchObject({ attempt: 2, at: at(25) });
  });

  it("counts a preempted attempt as a disruption, not an error", () => {
    const first = pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(5, 20, 143), disrupted: true });
    const status = deriveJobStatus({ job: job(), pods: [first] }, 7);
    expect(status).toMatchObject({ phase: "retrying", reason: "Preempted" });
  });

  it("is completed when the Job completes", () => {
    const done = pod({ created: 1, phase: "Succeeded", scheduledAt: 2, state: exited(5, 60, 0) });
    const status = deriveJobStatus(
      {
        job: job({
          conditions: [cond("SuccessCriteriaMet", "CompletionsReached", 61), cond("Complete", "CompletionsReached", 61)],
          completionTime: t(61),
        }),
        pods: [done],
      },
      7,
    );
    expect(status).toMatchObject({ phase: "completed", reason: "Succeeded", lastExitCode: 0, completionTime: at(61), startTime: at(0) });
    expect(phases(status)).toEqual(["pending", "starting", "running", "completed"]);
  });

  it("stays pending while the scheduler has not decided, and its history does not move once it does", () => {
    const waiting = deriveJobStatus({ job: job({}), pods: [pod({ created: 1, phase: "Pending" })] }, 7);
    expect(waiting).toMatchObject({
      phase: "pending",
      reason: "Created",
      message: "waiting for the Job controller and the scheduler to give it a pod",
    });
    const scheduled = deriveJobStatus({ job: job({}), pods: [pod({ created: 1, phase: "Pending", scheduledAt: 26 })] }, 7);
    expect(scheduled).toMatchObject({ phase: "starting" });
    expect(scheduled.transitions.slice(0, waiting.transitions.length)).toEqual(waiting.transitions);
    expect(scheduled.transitions.at(-1)?.at).toBe(at(26));
  });

  it("is completed, with its completion time, from SuccessCriteriaMet on, before the Complete condition", () => {
    const done = pod({ created: 1, phase: "Succeeded", scheduledAt: 2, state: exited(5, 60, 0) });
    const early = deriveJobStatus({ job: job({ conditions: [cond("SuccessCriteriaMet", "CompletionsReached", 61)] }), pods: [done] }, 7);
    const late = deriveJobStatus(
      {
        job: job({
          conditions: [cond("SuccessCriteriaMet", "CompletionsReached", 61), cond("Complete", "CompletionsReached", 62)],
          completionTime: t(62),
        }),
        pods: [done],
      },
      7,
    );
    expect(early).toMatchObject({ phase: "completed", completionTime: at(61) });
    // The history does not move when the Job controller adds Complete a moment later.
    expect(late.transitions).toEqual(early.transitions);
    expect(late.completionTime).toBe(early.completionTime);
  });

  it("is failed by the backoff limit, with the last exit code, dated by the last attempt's end whether the condition is there or not", () => {
    const pods = [1, 30, 60, 90].map((c) => pod({ created: c, phase: "Failed", scheduledAt: c + 1, state: exited(c + 2, c + 20, 1) }));
    const status = deriveJobStatus(
      { job: job({ conditions: [cond("FailureTarget", "BackoffLimitExceeded", 111), cond("Failed", "BackoffLimitExceeded", 112)] }), pods },
      7,
    );
    expect(status).toMatchObject({
      phase: "failed",
      reason: "BackoffLimitExceeded",
      attempts: 4,
      lastExitCode: 1,
      completionTime: at(110),
    });
    expect(status.message).toBe("failed 4 attempts; the last exited with code 1");
    expect(status.transitions.map((tr) => `${tr.phase}#${tr.attempt ?? ""}:${tr.exitCode ?? ""}`)).toEqual([
      "pending#:",
      "starting#1:",
      "running#1:",
      "retrying#1:1",
      "starting#2:",
      "running#2:",
      "retrying#2:1",
      "starting#3:",
      "running#3:",
      "retrying#3:1",
      "starting#4:",
      "running#4:",
      "failed#4:1",
    ]);
    // Before the Job controller has written its condition the rules already say the job is over: no retry is shown.
    expect(deriveJobStatus({ job: job(), pods }, 7)).toEqual(status);
  });

  it("says OOMKilled when the last attempt ran out of memory", () => {
    const pods = [pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(3, 9, 137, "OOMKilled") })];
    const status = deriveJobStatus({ job: job({ conditions: [cond("Failed", "BackoffLimitExceeded", 10)] }), pods }, 7);
    expect(status).toMatchObject({ phase: "failed", reason: "OOMKilled", lastExitCode: 137 });
  });

  it("is failed by the deadline", () => {
    const pods = [pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(3, 100, 143) })];
    const status = deriveJobStatus(
      { job: job({ conditions: [cond("Failed", "DeadlineExceeded", 100, "Job was active longer than specified deadline")] }), pods },
      7,
    );
    expect(status).toMatchObject({ phase: "failed", reason: "DeadlineExceeded", message: "Job was active longer than specified deadline" });
  });

  it("is failed at once by the pod failure policy on a configuration exit code, never retrying first", () => {
    const pods = [pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(3, 4, 2) })];
    const status = deriveJobStatus({ job: job({ conditions: [cond("Failed", "PodFailurePolicy", 5)] }), pods }, 7);
    expect(status).toMatchObject({ phase: "failed", reason: "ConfigurationError", attempts: 1, lastExitCode: 2 });
    expect(phases(status)).toEqual(["pending", "starting", "running", "failed"]);
    expect(status.transitions.at(-1)).toMatchObject({ attempt: 1, exitCode: 2, at: at(4) });
    // The pod has failed, the Job controller has not acted yet: the Job's own rules decide, the same way.
    const withPolicy = job();
    withPolicy.spec = { ...withPolicy.spec, podFailurePolicy: CONFIGURATION_POLICY } as V1Job["spec"];
    expect(deriveJobStatus({ job: withPolicy, pods }, 7)).toEqual(status);
    // An exit code the policy does not name is retried.
    const other = [pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(3, 4, 1) })];
    expect(deriveJobStatus({ job: withPolicy, pods: other }, 7)).toMatchObject({ phase: "retrying", reason: "Error" });
  });

  it("does not count a disrupted attempt against the backoff limit (the Ignore rule)", () => {
    const withPolicy = job();
    withPolicy.spec = { ...withPolicy.spec, backoffLimit: 0, podFailurePolicy: CONFIGURATION_POLICY } as V1Job["spec"];
    const pods = [pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(3, 9, 143), disrupted: true })];
    expect(deriveJobStatus({ job: withPolicy, pods }, 7)).toMatchObject({ phase: "retrying", reason: "Preempted" });
  });

  it("is queued with the quota's words while the API server refuses the pod for a full quota, and moves on once a pod is made", () => {
    const quota =
      'Error creating: pods "training-job-7-x8k2p" is forbidden: exceeded quota: training-quota, requested: requests.nvidia.com/gpu=8, used: requests.nvidia.com/gpu=16, limited: requests.nvidia.com/gpu=16';
    const events = [failedCreate(1, 3, quota), failedCreate(4, 9, quota.replace("x8k2p", "p9q7z")), successfulCreate(12)];
    const waitingJob = deriveJobStatus({ job: job(), pods: [], events }, 7);
    expect(waitingJob).toMatchObject({
      phase: "queued",
      reason: "QuotaExceeded",
      message:
        "exceeded quota: training-quota, requested: requests.nvidia.com/gpu=8, used: requests.nvidia.com/gpu=16, limited: requests.nvidia.com/gpu=16",
      attempts: 0,
    });
    // The first refusal dates it; later tries (new Event objects, other pod names) do not move it.
    expect(waitingJob.transitions.at(-1)?.at).toBe(at(1));
    const admitted = deriveJobStatus(
      { job: job(), pods: [pod({ created: 12, phase: "Running", scheduledAt: 12, state: running(13) })], events },
      7,
    );
    expect(admitted).toMatchObject({ phase: "running" });
    expect(phases(admitted)).toEqual(["pending", "queued", "starting", "running"]);
  });

  it("is pending with PodRejected and the API server's words when admission refuses the pod", () => {
    const limit = 'Error creating: pods "training-job-7-ab1cd" is forbidden: maximum cpu usage per Container is 64, but limit is 100';
    const status = deriveJobStatus({ job: job(), pods: [], events: [failedCreate(2, 2, limit)] }, 7);
    expect(status).toMatchObject({
      phase: "pending",
      reason: "PodRejected",
      message: "maximum cpu usage per Container is 64, but limit is 100",
    });
    // A refusal of another Job (same name, deleted and made again) is not this one's.
    const stale = failedCreate(2, 2, limit);
    stale.involvedObject.uid = "another-uid";
    expect(deriveJobStatus({ job: job(), pods: [], events: [stale] }, 7)).toMatchObject({ phase: "pending", reason: "Created" });
  });

  it("is queued on the quota when a retry's pod is refused, after the failed attempt", () => {
    const first = pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(3, 9, 1) });
    const quota =
      'Error creating: pods "training-job-7-zz9zz" is forbidden: exceeded quota: training-quota, requested: requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=16, limited: requests.nvidia.com/gpu=16';
    const status = deriveJobStatus({ job: job(), pods: [first], events: [failedCreate(11, 11, quota)] }, 7);
    expect(status).toMatchObject({ phase: "queued", reason: "QuotaExceeded" });
    expect(phases(status)).toEqual(["pending", "starting", "running", "retrying", "queued"]);
  });

  it("is stopped when a stop was requested, even while the pod terminates", () => {
    const annotations = { [ANNOTATION.stoppedAt]: at(40) };
    const terminating = pod({ created: 1, phase: "Running", scheduledAt: 2, state: running(5) });
    const stopping = deriveJobStatus({ job: job({ suspend: true, annotations }), pods: [terminating] }, 7);
    expect(stopping).toMatchObject({
      phase: "stopped",
      reason: "StoppedByUser",
      message: expect.stringContaining("waiting for the trainer"),
    });
    const stopped = deriveJobStatus({ job: job({ suspend: true, annotations }), pods: [] }, 7);
    expect(stopped).toMatchObject({ phase: "stopped", message: "stopped on request", completionTime: at(40) });
    expect(phases(stopping)).toEqual(["pending", "starting", "running", "stopped"]);
    // The trainer's answer to SIGTERM is the stopped attempt's exit code, kept once recorded and the pods are gone.
    const ended = pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(5, 41, 143) });
    const exited143 = deriveJobStatus({ job: job({ suspend: true, annotations }), pods: [ended] }, 7);
    expect(exited143.transitions.at(-1)).toMatchObject({ phase: "stopped", attempt: 1, exitCode: 143, message: "stopped on request" });
    const recorded = { ...annotations, [ANNOTATION.history]: JSON.stringify(historyOf(exited143)) };
    const gone = deriveJobStatus({ job: job({ suspend: true, annotations: recorded }), pods: [] }, 7);
    expect(gone.transitions).toEqual(exited143.transitions);
    expect(gone).toMatchObject({ attempts: 1, lastExitCode: 143 });
  });

  it("is failed with the stuck reason once the dispatcher gave up on starting it", () => {
    const verdict = { reason: "ImagePullBackOff", message: "the trainer could not start within 600s: Back-off", at: at(700) };
    const stuck = pod({ created: 1, phase: "Pending", scheduledAt: 2, state: waiting("ImagePullBackOff", "Back-off") });
    const status = deriveJobStatus(
      { job: job({ suspend: true, annotations: { [ANNOTATION.failedFast]: JSON.stringify(verdict) } }), pods: [stuck] },
      7,
    );
    expect(status).toMatchObject({ phase: "failed", reason: "ImagePullBackOff", message: verdict.message, completionTime: at(700) });
    expect(phases(status)).toEqual(["pending", "starting", "failed"]);
    // A malformed annotation is not trusted: the job is only suspended.
    const forged = deriveJobStatus({ job: job({ suspend: true, annotations: { [ANNOTATION.failedFast]: "{" } }), pods: [] }, 7);
    expect(forged).toMatchObject({ phase: "pending", reason: "Suspended" });
  });

  it("keeps a stopped job's history, attempts and exit code from the record once its pods are gone", () => {
    const before = deriveJobStatus({ job: job(), pods: [pod({ created: 1, phase: "Running", scheduledAt: 2, state: running(5) })] }, 7);
    const annotations = { [ANNOTATION.stoppedAt]: at(40), [ANNOTATION.history]: JSON.stringify(historyOf(before)) };
    const after = deriveJobStatus({ job: job({ suspend: true, annotations }), pods: [] }, 7);
    expect(after).toMatchObject({ phase: "stopped", attempts: 1, node: "gpu-node-1" });
    expect(after.transitions).toEqual([...before.transitions, expect.objectContaining({ phase: "stopped", at: at(40) })]);
  });

  it("is pending while suspended without a stop", () => {
    expect(deriveJobStatus({ job: job({ suspend: true }), pods: [] }, 7)).toMatchObject({ phase: "pending", reason: "Suspended" });
  });
});
