/**
 * What Kueue says of a training Job, from its Workload: whether it waits for admission and why
 * (quota, a preemption, never), where in its LocalQueue, and the flavor it waits for. Pure, so
 * job-status.ts takes the Workload as it takes pods and events, and the verdicts are table-tested.
 *
 * Kueue's own reason for a Workload without quota is `Pending` for a busy queue and for a request
 * no flavor can ever hold alike; only its message tells them apart. The flavor assigner says
 * `insufficient unused quota for <resource> in flavor <flavor>, <n> more needed` when the quota
 * exists but is in use (waiting helps), and otherwise `insufficient quota ... > maximum capacity`,
 * `flavor <f> doesn't match node affinity`, `untolerated taint ...` or `flavor <f> not found`,
 * none of which waiting changes (sigs.k8s.io/kueue v0.17 pkg/scheduler/flavorassigner).
 */
import type { V1Job } from "@kubernetes/client-node";
import { CPU_FLAVOR, gpuFlavorName, QUEUE_NAME_LABEL } from "../../charts-ts/kueue-contract.ts";
import { GPU_NODE_LABELS, GPU_RESOURCE } from "../../charts-ts/training-job.ts";
import type { Queue } from "./status-model.ts";

export interface WorkloadCondition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
  readonly lastTransitionTime?: Date | string;
}

/** The part of a `kueue.x-k8s.io/v1beta2` Workload the status reads. */
export interface Workload {
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly uid?: string;
    readonly resourceVersion?: string;
    readonly creationTimestamp?: Date | string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly ownerReferences?: readonly { readonly kind: string; readonly name: string; readonly uid?: string }[];
  };
  readonly spec?: { readonly queueName?: string; readonly active?: boolean };
  readonly status?: { readonly conditions?: readonly WorkloadCondition[] };
}

/** A Job's Workload and what the caller knows around it. */
export interface KueueObjects {
  /** Absent until Kueue has created it for the Job. */
  readonly workload?: Workload;
  /** The Workload's positionInLocalQueue from Kueue's visibility API (0 = next), while it is pending. */
  readonly position?: number;
  /** The Job whose Workload preempted this one, when the caller could find it (Kueue names it by uid). */
  readonly preemptor?: string;
}

/** A Kueue wait: the queued transition's reason, message, time and queue. */
export interface KueueWait {
  readonly reason: "WaitingForQuota" | "Preempted" | "Inadmissible";
  readonly message: string;
  readonly at: Date | string | undefined;
  readonly queue: Queue;
}

/** Whether the Job was submitted to a Kueue LocalQueue. Without the label Kueue leaves a Job alone. */
export function queuedByKueue(job: V1Job): boolean {
  return job.metadata?.labels?.[QUEUE_NAME_LABEL] !== undefined;
}

function conditionOf(workload: Workload | undefined, type: string): WorkloadCondition | undefined {
  return workload?.status?.conditions?.find((c) => c.type === type);
}

const isTrue = (condition: WorkloadCondition | undefined) => condition?.status === "True";

/** Admitted (quota reserved) now. */
export function isAdmitted(workload: Workload | undefined): boolean {
  return isTrue(conditionOf(workload, "QuotaReserved"));
}

/** Kueue's admission, while the job holds its quota: Kueue's words and when. */
export function admissionOf(workload: Workload | undefined): { message: string; at: Date | string | undefined } | undefined {
  const reserved = conditionOf(workload, "QuotaReserved");
  if (!isTrue(reserved)) return undefined;
  const admitted = conditionOf(workload, "Admitted");
  return {
    message: `admitted by Kueue (${reserved?.message ?? "quota reserved"}); waiting for the Job controller to give it a pod`,
    at: (isTrue(admitted) ? admitted?.lastTransitionTime : undefined) ?? reserved?.lastTransitionTime,
  };
}

/** What waiting for: a busy quota (false) or a request no flavor will ever take (true). */
export function neverAdmissible(reserved: WorkloadCondition | undefined): boolean {
  const message = reserved?.message ?? "";
  // The Workload names a LocalQueue or ClusterQueue that is not there: nothing will admit it.
  if (reserved?.reason === "Inadmissible") return /doesn't exist/.test(message);
  return /couldn't assign flavors/.test(message) && !/insufficient unused quota/.test(message);
}

/**
 * The flavor the job waits for: the one Kueue's message names for the GPUs (else the first it
 * names), else the job's own: its gpu-type's flavor, or `cpu` for a CPU-only job. A GPU job of
 * any type has none until Kueue names one.
 */
export function flavorOf(message: string, job: V1Job): string | undefined {
  const named = [...message.matchAll(/for (\S+) in flavor ([^,;\s]+)/g)].map(([, resource, flavor]) => ({ resource, flavor }));
  const fromMessage = (named.find((entry) => entry.resource === GPU_RESOURCE) ?? named[0])?.flavor;
  if (fromMessage) return fromMessage;
  const pod = job.spec?.template.spec;
  const gpuType = pod?.nodeSelector?.[GPU_NODE_LABELS.gpuType];
  if (gpuType) return gpuFlavorName(gpuType);
  return pod?.containers.some((c) => c.resources?.limits?.[GPU_RESOURCE] !== undefined) ? undefined : CPU_FLAVOR;
}

/** The latest preemption Kueue recorded on the Workload: still in force, or since re-admitted. */
export function preemptionOf(workload: Workload | undefined): WorkloadCondition | undefined {
  const evicted = conditionOf(workload, "Evicted");
  if (isTrue(evicted) && evicted?.reason === "Preempted") return evicted;
  const requeued = conditionOf(workload, "Requeued");
  return requeued?.reason === "Preempted" ? requeued : undefined;
}

/** The uid of the Job whose Workload preempted this one, as Kueue's message names it. */
export function preemptorUidOf(workload: Workload | undefined): string | undefined {
  return /JobUID: ([^,)\s]+)/.exec(preemptionOf(workload)?.message ?? "")?.[1];
}

/** Kueue's preemption message in the backend's words: by whom, why, and that it is queued again. */
export function preemptedMessage(condition: WorkloadCondition, preemptor: string | undefined): string {
  const message = condition.message ?? "";
  const cause = /due to ([^;]+)/.exec(message)?.[1];
  const queue = /preemptor path: (\S+?);/.exec(message)?.[1]?.split("/").at(-1);
  if (cause === undefined) return `${message || "preempted by Kueue"}; queued again`;
  const who = preemptor ?? "a workload";
  return `preempted by ${who}${queue === undefined ? "" : ` of ClusterQueue ${queue}`} due to ${cause}; queued again`;
}

/**
 * Why a Job Kueue holds waits, while its Workload has no quota: preempted (and queued again),
 * no flavor can ever take it, or its queue is busy. Undefined when it does not wait for Kueue:
 * admitted, not yet given a Workload, or deactivated (a stop, a fail-fast verdict).
 */
export function kueueWait(job: V1Job, kueue: KueueObjects | undefined): KueueWait | undefined {
  const workload = kueue?.workload;
  if (!workload || workload.spec?.active === false || isAdmitted(workload)) return undefined;
  const reserved = conditionOf(workload, "QuotaReserved");
  const pending = reserved?.message ?? "";
  const flavor = flavorOf(pending, job);
  const queue: Queue = {
    name: workload.spec?.queueName ?? job.metadata?.labels?.[QUEUE_NAME_LABEL] ?? "",
    ...(kueue?.position !== undefined && { position: kueue.position + 1 }),
    ...(flavor !== undefined && { flavor }),
  };
  const waitingSince = reserved?.lastTransitionTime ?? workload.metadata?.creationTimestamp;
  if (neverAdmissible(reserved)) return { reason: "Inadmissible", message: pending, at: waitingSince, queue };
  const evicted = conditionOf(workload, "Evicted");
  if (isTrue(evicted) && evicted?.reason === "Preempted")
    return { reason: "Preempted", message: preemptedMessage(evicted, kueue?.preemptor), at: evicted.lastTransitionTime, queue };
  return {
    reason: "WaitingForQuota",
    message: pending || `waiting in LocalQueue ${queue.name} for Kueue to reserve quota`,
    at: waitingSince,
    queue,
  };
}

const millis = (value: Date | string | undefined): number => (value === undefined ? Number.NaN : new Date(value).getTime());

/**
 * The pods of the Job's current admission. A run Kueue preempted is no attempt of the job: Kueue
 * suspends the Job, the Job controller deletes its pods without counting a failure, and the next
 * admission starts afresh. Its pods (created no later than the eviction) are left out while the
 * eviction holds, and after re-admission those still being deleted are, so none shows as a retry.
 */
export function podsOfCurrentAdmission<P extends { readonly metadata?: { creationTimestamp?: Date; deletionTimestamp?: Date } }>(
  pods: readonly P[],
  workload: Workload | undefined,
): readonly P[] {
  const preemption = preemptionOf(workload);
  if (!preemption) return pods;
  const evictedAt = millis(preemption.lastTransitionTime);
  const inForce = preemption.type === "Evicted";
  return pods.filter(
    (pod) => !(millis(pod.metadata?.creationTimestamp) <= evictedAt && (inForce || pod.metadata?.deletionTimestamp !== undefined)),
  );
}
