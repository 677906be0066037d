/**
 * Whether any node could ever take a training job, judged from what is known for
 * sure. "Insufficient nvidia.com/gpu" is what the scheduler says both for a busy pool
 * (wait) and for a request larger than any node (never), so the scheduler's words
 * alone cannot end a job. Three things can:
 * - the GPU pools the stack declared (GPU_NODE_CAPACITY: GPUs per node by gpu-type),
 *   which hold even while a pool is scaled to zero;
 * - the GPU nodes the cluster has now (a pool added outside the stack);
 * - cluster-autoscaler's verdict on the pod, when it says that a new node of no pool
 *   would fit and names only reasons that a new node cannot change.
 * With none of them (no pools configured, no node of that type, no autoscaler), the job
 * stays queued: unknown is not never.
 */
import type { CoreV1Event, V1Job, V1Node } from "@kubernetes/client-node";
import { GPU_NODE_LABELS, GPU_RESOURCE, TRAINER_CONTAINER } from "../../charts-ts/training-job.ts";

/** GPUs per node of the largest pool, by gpu-type label value. */
export type GpuNodeCapacity = ReadonlyMap<string, number>;

/** What a Job's pods ask of a node, read from its pod template (the cluster's truth, not the request). */
export interface GpuDemand {
  readonly gpus: number;
  /** The gpu-type node selector; absent means any GPU node. */
  readonly gpuType?: string;
}

const GPU_TYPE = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

/** Parses GPU_NODE_CAPACITY, `t4=1,a100=8`: the gpu-type label value and the GPUs one node of it has. */
export function parseGpuNodeCapacity(text: string): Map<string, number> {
  const capacity = new Map<string, number>();
  for (const entry of text.split(",").map((part) => part.trim())) {
    const match = entry.match(/^([^=\s]+)=(\d+)$/);
    const gpuType = match?.[1] ?? "";
    const gpus = Number(match?.[2]);
    if (!match || !GPU_TYPE.test(gpuType) || !Number.isSafeInteger(gpus) || gpus < 1) {
      throw new Error(`"${entry}" is not <gpu-type>=<GPUs per node>, e.g. t4=1,a100=8`);
    }
    if (capacity.has(gpuType)) throw new Error(`gpu-type ${gpuType} is given twice`);
    capacity.set(gpuType, gpus);
  }
  return capacity;
}

/** GPU_NODE_CAPACITY's text, in gpu-type order, so equal capacities read the same. */
export function formatGpuNodeCapacity(capacity: GpuNodeCapacity): string {
  return [...capacity]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([gpuType, gpus]) => `${gpuType}=${gpus}`)
    .join(",");
}

export function gpuDemandOf(job: V1Job): GpuDemand | undefined {
  const spec = job.spec?.template.spec;
  const trainer = spec?.containers.find((container) => container.name === TRAINER_CONTAINER);
  const gpus = Number(trainer?.resources?.limits?.[GPU_RESOURCE] ?? 0);
  if (!Number.isFinite(gpus) || gpus <= 0) return undefined;
  const gpuType = spec?.nodeSelector?.[GPU_NODE_LABELS.gpuType];
  return { gpus, ...(gpuType !== undefined && { gpuType }) };
}

/**
 * The largest GPU count per gpu-type among the nodes. A node that advertises no GPUs is
 * left out: until the device plugin registers them, a new GPU node shows none.
 */
export function largestGpuNodes(nodes: readonly V1Node[]): Map<string, number> {
  const largest = new Map<string, number>();
  for (const node of nodes) {
    const gpuType = node.metadata?.labels?.[GPU_NODE_LABELS.gpuType];
    const gpus = Number(node.status?.allocatable?.[GPU_RESOURCE] ?? 0);
    if (gpuType === undefined || !Number.isFinite(gpus) || gpus <= 0) continue;
    largest.set(gpuType, Math.max(gpus, largest.get(gpuType) ?? 0));
  }
  return largest;
}

/** Why no node could ever take the demand, or undefined when one could or nobody can tell. */
export function capacityVerdict(demand: GpuDemand, configured: GpuNodeCapacity, observed: GpuNodeCapacity): string | undefined {
  const { gpus, gpuType } = demand;
  const sizes =
    gpuType === undefined
      ? [...configured.values(), ...observed.values()]
      : [configured.get(gpuType), observed.get(gpuType)].filter((size): size is number => size !== undefined);
  if (sizes.length === 0) {
    // Only declared pools make an absent type certain; without them an autoscaler may still add one.
    if (gpuType === undefined || configured.size === 0) return undefined;
    return `no GPU pool has type ${gpuType} (pools: ${[...configured.keys()].join(", ")})`;
  }
  const largest = Math.max(...sizes);
  if (gpus <= largest) return undefined;
  const kind = gpuType === undefined ? "GPU node" : `${gpuType} node`;
  return `asks for ${gpus} GPUs on one node; the largest ${kind} has ${largest}`;
}

const AUTOSCALER = "cluster-autoscaler";
const NEVER_FITS_MARK = "(it wouldn't fit if a new node is added)";
/**
 * Node-group reasons a new node of that group cannot change. Others ("max node group size
 * reached", "in backoff after failed scale-up", ...) say the group is busy, not too small.
 */
const PERMANENT_REJECTION = [
  /^Insufficient \S+$/,
  /^node\(s\) didn't match Pod's node affinity\/selector$/,
  /^node\(s\) had untolerated taint/,
];

/**
 * The autoscaler's verdict on a queued pod: its newest scale-up event (TriggeredScaleUp or
 * NotTriggerScaleUp, at or after `since`), when that says no node group's new node would fit
 * for reasons no new node can change.
 */
export function autoscalerVerdict(events: readonly CoreV1Event[], since: string): string | undefined {
  const after = Date.parse(since);
  const newest = events
    .filter((event) => (event.source?.component ?? event.reportingComponent) === AUTOSCALER)
    .filter((event) => event.reason === "NotTriggerScaleUp" || event.reason === "TriggeredScaleUp")
    .map((event) => ({ event, at: Date.parse(String(event.lastTimestamp ?? event.eventTime ?? "")) }))
    .filter(({ at }) => at >= after)
    .sort((a, b) => b.at - a.at)[0]?.event;
  const message = newest?.reason === "NotTriggerScaleUp" ? (newest.message ?? "") : "";
  const mark = message.indexOf(NEVER_FITS_MARK);
  if (mark < 0) return undefined;
  // "<count> <reason>" per node group, joined by ", " (cluster-autoscaler's ReasonsMessage).
  const reasons = message
    .slice(mark + NEVER_FITS_MARK.length)
    .replace(/^:\s*/, "")
    .split(", ")
    .map((item) => item.trim().replace(/^\d+\s+/, ""))
    .filter((item) => item !== "");
  if (reasons.length === 0) return undefined;
  if (!reasons.every((reason) => PERMANENT_REJECTION.some((pattern) => pattern.test(reason)))) return undefined;
  return `cluster-autoscaler: ${message}`;
}
