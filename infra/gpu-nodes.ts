/**
 * What makes a node a GPU node, for every cloud's node pools and the add-ons that
 * run on them. The label keys and the taint key come from the TrainingJob
 * construct, which selects and tolerates them.
 */
import { GPU_NODE_LABELS, GPU_TAINT } from "../charts-ts/training-job.ts";

export { GPU_TAINT };

/** nvidia-device-plugin charts >= 0.15 schedule only onto nodes with this label (or NFD/GFD labels, which we do not run). */
const GPU_PRESENT_LABEL = "nvidia.com/gpu.present";

/** Node labels of a GPU pool whose GPUs are of `gpuType` (e.g. "t4", "a100"): the value jobs select by `resources.gpuType`. */
export function gpuNodeLabels(gpuType: string): Record<string, string> {
  return { accelerator: GPU_NODE_LABELS.accelerator, [GPU_NODE_LABELS.gpuType]: gpuType, [GPU_PRESENT_LABEL]: "true" };
}

/** For GPU node daemons (device plugin, DCGM exporter). */
export const GPU_TOLERATION = { key: GPU_TAINT.key, operator: "Exists", effect: GPU_TAINT.effect } as const;

/** Schedules GPU node daemons onto our GPU pools, whichever of the two GPU labels a node carries. */
export const GPU_NODE_AFFINITY = {
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [
        { matchExpressions: [{ key: "accelerator", operator: "In", values: [GPU_NODE_LABELS.accelerator] }] },
        { matchExpressions: [{ key: GPU_PRESENT_LABEL, operator: "In", values: ["true"] }] },
      ],
    },
  },
} as const;

/** The same taint as the EKS node group and GKE node pool APIs spell it. */
export const GPU_TAINT_FOR_NODE_POOLS = { key: GPU_TAINT.key, value: GPU_TAINT.value, effect: "NO_SCHEDULE" } as const;

/**
 * GPUs per node of the largest pool of each gpu-type: what the dispatcher needs to fail a
 * job no pool could ever fit, even while every pool is scaled to zero.
 */
export function gpuNodeCapacity(pools: readonly { readonly gpuType: string; readonly gpusPerNode: number }[]): Record<string, number> {
  const capacity: Record<string, number> = {};
  for (const { gpuType, gpusPerNode } of pools) capacity[gpuType] = Math.max(gpusPerNode, capacity[gpuType] ?? 0);
  return capacity;
}
