// Realistic Job, Pod and Event objects for the status derivation's table tests.
import type { CoreV1Event, V1ContainerState, V1Job, V1JobCondition, V1Pod } from "@kubernetes/client-node";

// Realistic objects as the API server returns them, built at fixed times: t(0) is the Job's creation.
export const t = (seconds: number) => new Date(Date.UTC(2026, 10, 28, 12, 0, seconds));
export const at = (seconds: number) => t(seconds).toISOString();

export function job(
  extra: {
    conditions?: V1JobCondition[];
    suspend?: boolean;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    completionTime?: Date;
    /** The trainer's GPUs and gpu-type, as TrainingJob renders them. */
    gpus?: { count: number; type?: string };
  } = {},
): V1Job {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name: "training-job-7",
      namespace: "training",
      uid: "job-uid-7",
      creationTimestamp: t(0),
      ...(extra.annotations && { annotations: extra.annotations }),
      ...(extra.labels && { labels: extra.labels }),
    },
    spec: {
      backoffLimit: 3,
      suspend: extra.suspend ?? false,
      template: {
        spec: {
          containers: extra.gpus ? [{ name: "trainer", resources: { limits: { "nvidia.com/gpu": String(extra.gpus.count) } } }] : [],
          ...(extra.gpus?.type && { nodeSelector: { "gpu-type": extra.gpus.type } }),
        },
      },
    },
    status: {
      startTime: t(0),
      ...(extra.conditions && { conditions: extra.conditions }),
      ...(extra.completionTime && { completionTime: extra.completionTime }),
    },
  };
}

export const cond = (type: string, reason: string, seconds: number, message?: string): V1JobCondition => ({
  type,
  status: "True",
  reason,
  lastTransitionTime: t(seconds),
  ...(message && { message }),
});

export interface PodShape {
  created: number;
  phase: "Pending" | "Running" | "Succeeded" | "Failed";
  scheduledAt?: number;
  unschedulable?: string;
  state?: V1ContainerState;
  disrupted?: boolean;
  node?: string;
  /** When the pod was deleted (its deletionTimestamp). */
  deleted?: number;
}

let podCount = 0;
export function pod(shape: PodShape): V1Pod {
  podCount += 1;
  const conditions = [
    ...(shape.unschedulable
      ? [
          {
            type: "PodScheduled",
            status: "False",
            reason: "Unschedulable",
            message: shape.unschedulable,
            lastTransitionTime: t(shape.created),
          },
        ]
      : []),
    ...(shape.scheduledAt !== undefined ? [{ type: "PodScheduled", status: "True", lastTransitionTime: t(shape.scheduledAt) }] : []),
    ...(shape.disrupted
      ? [{ type: "DisruptionTarget", status: "True", reason: "PreemptionByScheduler", lastTransitionTime: t(shape.created + 1) }]
      : []),
  ];
  return {
    metadata: {
      name: `training-job-7-pod${podCount}`,
      namespace: "training",
      creationTimestamp: t(shape.created),
      ...(shape.deleted !== undefined && { deletionTimestamp: t(shape.deleted) }),
    },
    spec: { containers: [{ name: "trainer" }], ...(shape.scheduledAt !== undefined && { nodeName: shape.node ?? "gpu-node-1" }) },
    status: {
      phase: shape.phase,
      conditions,
      ...(shape.state && {
        containerStatuses: [{ name: "trainer", image: "i", imageID: "", ready: false, restartCount: 0, state: shape.state }],
      }),
    },
  };
}

export const running = (from: number): V1ContainerState => ({ running: { startedAt: t(from) } });
export const exited = (from: number, to: number, exitCode: number, reason = exitCode === 0 ? "Completed" : "Error"): V1ContainerState => ({
  terminated: { startedAt: t(from), finishedAt: t(to), exitCode, reason },
});
export const waiting = (reason: string, message: string): V1ContainerState => ({ waiting: { reason, message } });

export function failedScheduling(podName: string, first: number, message: string): CoreV1Event {
  return {
    metadata: { name: `${podName}.1`, namespace: "training" },
    involvedObject: { kind: "Pod", name: podName, namespace: "training" },
    reason: "FailedScheduling",
    message,
    type: "Warning",
    firstTimestamp: t(first),
    lastTimestamp: t(first + 5),
  };
}

export function jobEvent(reason: string, first: number, last: number, message: string, type = "Warning"): CoreV1Event {
  return {
    metadata: { name: `training-job-7.${reason}.${first}`, namespace: "training" },
    involvedObject: { kind: "Job", name: "training-job-7", namespace: "training", uid: "job-uid-7", apiVersion: "batch/v1" },
    reason,
    message,
    type,
    source: { component: "job-controller" },
    firstTimestamp: t(first),
    lastTimestamp: t(last),
    count: 1,
  };
}
export const failedCreate = (first: number, last: number, message: string) => jobEvent("FailedCreate", first, last, message);
export const successfulCreate = (at: number) => jobEvent("SuccessfulCreate", at, at, "Created pod: training-job-7-ok123", "Normal");

/** The TrainingJob construct's podFailurePolicy. */
export const CONFIGURATION_POLICY = {
  rules: [
    { action: "FailJob", onExitCodes: { containerName: "trainer", operator: "In", values: [2, 3] } },
    { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
  ],
};
