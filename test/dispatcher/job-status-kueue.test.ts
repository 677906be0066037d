// The derivation with Kueue: a Job submitted to a LocalQueue, its Workload as Kueue v0.17 writes it
// (the conditions and messages below are copied from Workloads on the test control plane).
import { describe, expect, it } from "vitest";
import { ANNOTATION } from "../../charts-ts/labels.ts";
import { deriveJobStatus } from "../../dispatcher/status/job-status.ts";
import {
  flavorOf,
  neverAdmissible,
  podsOfCurrentAdmission,
  type Workload,
  type WorkloadCondition,
} from "../../dispatcher/status/kueue-workload.ts";
import { at, exited, job, pod, running, t } from "./status-fixtures.ts";

const QUEUED = { "kueue.x-k8s.io/queue-name": "project-a", "kueue.x-k8s.io/priority-class": "training-default" };
const kueueJob = (suspend = true) => job({ labels: QUEUED, suspend, gpus: { count: 8, type: "t4" } });

const WAITING = "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor gpu-t4, 8 more needed";
const PREEMPTION =
  "Preempted to accommodate a workload (UID: 20cb0791, JobUID: 23123b11-26d7) due to reclamation within the cohort; preemptor path: /training/training-project-b; preemptee path: /training/training-project-a";

const c = (type: string, status: string, reason: string, seconds: number, message?: string): WorkloadCondition => ({
  type,
  status,
  reason,
  lastTransitionTime: t(seconds),
  ...(message !== undefined && { message }),
});

function workload(conditions: WorkloadCondition[], active = true): Workload {
  return {
    metadata: {
      name: "job-training-job-7-41a91",
      namespace: "training",
      creationTimestamp: t(1),
      labels: { "kueue.x-k8s.io/job-uid": "job-uid-7" },
      ownerReferences: [{ kind: "Job", name: "training-job-7", uid: "job-uid-7" }],
    },
    spec: { queueName: "project-a", active },
    status: { conditions },
  };
}

const pendingFor = (message: string, seconds = 1) => c("QuotaReserved", "False", "Pending", seconds, message);
const admitted = (seconds: number) => [
  c("QuotaReserved", "True", "QuotaReserved", seconds, "Quota reserved in ClusterQueue training-project-a"),
  c("Admitted", "True", "Admitted", seconds, "The workload is admitted"),
];
/** Evicted for a reclaim at `seconds`, queued again and waiting: what Kueue writes on a preemption. */
const preempted = (seconds: number) => [
  pendingFor(
    "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor gpu-t4, 4 more needed",
    seconds,
  ),
  c("Evicted", "True", "Preempted", seconds, PREEMPTION),
  c("Admitted", "False", "NoReservation", seconds, "The workload has no reservation"),
  c("Preempted", "True", "InCohortReclamation", seconds, PREEMPTION),
  c("Requeued", "True", "Preempted", seconds, PREEMPTION),
];
/** Re-admitted at `seconds` after the preemption at `evicted`. */
const readmitted = (evicted: number, seconds: number) => [
  ...admitted(seconds),
  c("Evicted", "False", "QuotaReserved", seconds),
  c("Preempted", "False", "QuotaReserved", seconds),
  c("Requeued", "True", "Preempted", evicted, PREEMPTION),
];

const keys = (status: ReturnType<typeof deriveJobStatus>) => status.transitions.map((tr) => `${tr.phase}/${tr.reason}`);

describe("deriveJobStatus with Kueue", () => {
  it("is pending until Kueue has made the Job's Workload", () => {
    const status = deriveJobStatus({ job: kueueJob(), pods: [], kueue: {} }, 7);
    expect(status).toMatchObject({ phase: "pending", reason: "Created", message: "waiting for Kueue to queue it", attempts: 0 });
    expect(status.queue).toBeUndefined();
    expect(keys(status)).toEqual(["pending/Created"]);
  });

  it("is queued/WaitingForQuota with Kueue's words, its LocalQueue, 1-based position and the flavor from the message", () => {
    const status = deriveJobStatus({ job: kueueJob(), pods: [], kueue: { workload: workload([pendingFor(WAITING, 2)]), position: 1 } }, 7);
    expect(status).toMatchObject({
      phase: "queued",
      reason: "WaitingForQuota",
      message: WAITING,
      attempts: 0,
      queue: { name: "project-a", position: 2, flavor: "gpu-t4" },
    });
    expect(status.transitions.at(-1)).toEqual({
      phase: "queued",
      reason: "WaitingForQuota",
      message: WAITING,
      queue: { name: "project-a", position: 2, flavor: "gpu-t4" },
      at: at(2),
    });
    expect(keys(status)).toEqual(["pending/Created", "queued/WaitingForQuota"]);
  });

  it("has no position until the visibility API listed the job, and the same transition once it has", () => {
    const objects = { job: kueueJob(), pods: [] };
    const before = deriveJobStatus({ ...objects, kueue: { workload: workload([pendingFor(WAITING, 2)]) } }, 7);
    const after = deriveJobStatus({ ...objects, kueue: { workload: workload([pendingFor(WAITING, 2)]), position: 0 } }, 7);
    expect(before.queue).toEqual({ name: "project-a", flavor: "gpu-t4" });
    expect(after.queue).toEqual({ name: "project-a", position: 1, flavor: "gpu-t4" });
    expect(before.transitions.map(({ queue: _queue, ...rest }) => rest)).toEqual(
      after.transitions.map(({ queue: _queue, ...rest }) => rest),
    );
  });

  it("runs as today once Kueue admits it: no queue, the pods' transitions", () => {
    const status = deriveJobStatus(
      {
        job: kueueJob(false),
        pods: [pod({ created: 6, phase: "Running", scheduledAt: 6, state: running(7) })],
        kueue: { workload: workload(admitted(5)) },
      },
      7,
    );
    expect(status).toMatchObject({ phase: "running", reason: "Started", attempts: 1 });
    expect(status.queue).toBeUndefined();
    expect(keys(status)).toEqual(["pending/Created", "starting/ContainerCreating", "running/Started"]);
  });

  it("is pending/Admitted, not Suspended, from Kueue's admission until the first pod: a transition after the queue's", () => {
    for (const suspend of [true, false]) {
      const status = deriveJobStatus({ job: kueueJob(suspend), pods: [], kueue: { workload: workload(admitted(5)) } }, 7);
      expect(status).toMatchObject({
        phase: "pending",
        reason: "Admitted",
        message: "admitted by Kueue (Quota reserved in ClusterQueue training-project-a); waiting for the Job controller to give it a pod",
      });
      expect(status.queue).toBeUndefined();
      expect(status.transitions.at(-1)?.at).toBe(at(5));
      expect(keys(status)).toEqual(["pending/Created", "pending/Admitted"]);
    }
  });

  it("is queued/Preempted when Kueue evicts a running job: by whom, queued again, no retry, the run not counted", () => {
    // The evicted run's pod, still ending (the trainer checkpoints); the Job suspended by Kueue.
    const ending = pod({ created: 3, phase: "Failed", scheduledAt: 3, state: exited(4, 21, 143), deleted: 20 });
    const status = deriveJobStatus(
      { job: kueueJob(true), pods: [ending], kueue: { workload: workload(preempted(20)), position: 0, preemptor: "training-job-9" } },
      7,
    );
    expect(status).toMatchObject({
      phase: "queued",
      reason: "Preempted",
      message: "preempted by training-job-9 of ClusterQueue training-project-b due to reclamation within the cohort; queued again",
      attempts: 0,
      queue: { name: "project-a", position: 1, flavor: "gpu-t4" },
    });
    expect(status.transitions.at(-1)?.at).toBe(at(20));
    expect(keys(status)).toEqual(["pending/Created", "queued/Preempted"]);
    expect(status.transitions.some((tr) => tr.phase === "retrying")).toBe(false);
  });

  it("names the preemptor's ClusterQueue when its Job is not known", () => {
    const status = deriveJobStatus({ job: kueueJob(true), pods: [], kueue: { workload: workload(preempted(20)) } }, 7);
    expect(status.message).toBe(
      "preempted by a workload of ClusterQueue training-project-b due to reclamation within the cohort; queued again",
    );
  });

  it("keeps the preemption in the history after re-admission, and the next run is attempt 1 with no retry", () => {
    const ending = pod({ created: 3, phase: "Failed", scheduledAt: 3, state: exited(4, 21, 143), deleted: 20 });
    const next = pod({ created: 41, phase: "Running", scheduledAt: 41, state: running(42) });
    const status = deriveJobStatus(
      { job: kueueJob(false), pods: [ending, next], kueue: { workload: workload(readmitted(20, 40)), preemptor: "training-job-9" } },
      7,
    );
    expect(status).toMatchObject({ phase: "running", attempts: 1 });
    expect(status.queue).toBeUndefined();
    expect(keys(status)).toEqual(["pending/Created", "queued/Preempted", "starting/ContainerCreating", "running/Started"]);
    expect(status.transitions[1]).toMatchObject({ at: at(20), message: expect.stringContaining("preempted by training-job-9") });
    expect(status.transitions.at(-1)).toMatchObject({ attempt: 1, at: at(42) });
  });

  it("is queued/Inadmissible when no flavor can ever take the job", () => {
    const noFlavor = "couldn't assign flavors to pod set main: flavor gpu-t4 doesn't match node affinity";
    const status = deriveJobStatus(
      {
        job: job({ labels: QUEUED, suspend: true, gpus: { count: 2, type: "a100" } }),
        pods: [],
        kueue: { workload: workload([pendingFor(noFlavor, 2)]) },
      },
      7,
    );
    expect(status).toMatchObject({
      phase: "queued",
      reason: "Inadmissible",
      message: noFlavor,
      queue: { name: "project-a", flavor: "gpu-a100" },
    });
  });

  it("is failed once the dispatcher failed the inadmissible job fast and deactivated its Workload", () => {
    const verdict = { reason: "Inadmissible", message: "no queue could ever admit this job: ...", at: at(3) };
    const status = deriveJobStatus(
      {
        job: job({ labels: QUEUED, suspend: true, annotations: { [ANNOTATION.failedFast]: JSON.stringify(verdict) } }),
        pods: [],
        kueue: { workload: workload([c("QuotaReserved", "False", "Inactive", 3, "The workload is deactivated")], false) },
      },
      7,
    );
    expect(status).toMatchObject({ phase: "failed", reason: "Inadmissible", completionTime: at(3) });
    expect(status.queue).toBeUndefined();
  });

  it("tells a node that cannot take the pod (queued/Unschedulable) from a queue without quota", () => {
    const message = "0/3 nodes are available: 1 Insufficient nvidia.com/gpu.";
    const status = deriveJobStatus(
      {
        job: kueueJob(false),
        pods: [pod({ created: 6, phase: "Pending", unschedulable: message })],
        kueue: { workload: workload(admitted(5)) },
      },
      7,
    );
    expect(status).toMatchObject({ phase: "queued", reason: "Unschedulable", message });
    expect(status.queue).toBeUndefined();
  });

  it("is exactly today's status for a Job without the queue label, whatever is passed for Kueue", () => {
    const plain = job({ suspend: true });
    const today = deriveJobStatus({ job: plain, pods: [] }, 7);
    expect(today).toMatchObject({ phase: "pending", reason: "Suspended" });
    expect(deriveJobStatus({ job: plain, pods: [], kueue: { workload: workload([pendingFor(WAITING)]) } }, 7)).toEqual(today);
    const failedPod = pod({ created: 1, phase: "Failed", scheduledAt: 2, state: exited(3, 5, 1) });
    expect(keys(deriveJobStatus({ job: job(), pods: [failedPod] }, 7))).toContain("retrying/Error");
  });
});

describe("Kueue's verdicts", () => {
  it.each([
    [WAITING, false],
    ["couldn't assign flavors to pod set main: flavor gpu-t4 doesn't match node affinity", true],
    ["couldn't assign flavors to pod set main: flavor gpu-h100 not found", true],
    [
      "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor gpu-t4, previously considered podsets requests (0) + current podset request (16) > maximum capacity (8)",
      true,
    ],
    // One flavor will never do, another is only busy: waiting helps.
    [`couldn't assign flavors to pod set main: flavor gpu-a100 doesn't match node affinity, ${WAITING.split(": ")[1]}`, false],
    ["Workload no longer fits after processing another workload", false],
  ])("%s: never admissible = %s", (message, never) => {
    expect(neverAdmissible(pendingFor(message))).toBe(never);
  });

  it("counts a missing LocalQueue as never, an inactive ClusterQueue as waiting", () => {
    expect(neverAdmissible(c("QuotaReserved", "False", "Inadmissible", 1, "LocalQueue project-9 doesn't exist"))).toBe(true);
    expect(neverAdmissible(c("QuotaReserved", "False", "Inadmissible", 1, "ClusterQueue training-project-a is inactive"))).toBe(false);
  });

  it("takes the flavor of the GPUs from Kueue's message, else the job's gpu-type, else cpu for a CPU-only job", () => {
    const both =
      "couldn't assign flavors to pod set main: insufficient unused quota for cpu in flavor cpu, 2 more needed, insufficient unused quota for nvidia.com/gpu in flavor gpu-a100, 4 more needed";
    expect(flavorOf(both, kueueJob())).toBe("gpu-a100");
    expect(flavorOf("Workload no longer fits after processing another workload", kueueJob())).toBe("gpu-t4");
    expect(flavorOf("", job({ labels: QUEUED }))).toBe("cpu");
    expect(flavorOf("", job({ labels: QUEUED, gpus: { count: 1 } }))).toBeUndefined();
  });

  it("leaves out the evicted run's pods, and only those", () => {
    const evicted = pod({ created: 3, phase: "Running", scheduledAt: 3, state: running(4) });
    const next = pod({ created: 41, phase: "Pending" });
    expect(podsOfCurrentAdmission([evicted], workload(preempted(20)))).toEqual([]);
    expect(podsOfCurrentAdmission([next], workload(readmitted(20, 40)))).toEqual([next]);
    expect(podsOfCurrentAdmission([evicted], workload(admitted(2)))).toEqual([evicted]);
  });
});
