import { ApiObject } from "cdk8s";
import { Construct } from "constructs";
import { CPU_FLAVOR, clusterQueueName, gpuFlavorName, KUEUE_API_VERSION, localQueueName, TRAINING_COHORT } from "../kueue-contract.ts";
import { PRIORITIES } from "../request.ts";
import { priorityClassName } from "../settings.ts";
import { GPU_NODE_LABELS, GPU_RESOURCE, GPU_TAINT } from "../training-job.ts";
import { priorityValue } from "./priority-classes.ts";

/** One GPU node pool, as the stack declares it. */
export interface GpuPoolQuota {
  /** The pool's `gpu-type` node label value (`t4`, `a100`). */
  readonly gpuType: string;
  /** Nodes the pool may scale to. */
  readonly maxSize: number;
  /** GPUs on each node. */
  readonly gpusPerNode: number;
}

export interface CpuQuota {
  /** CPU cores, as a Kubernetes quantity. */
  readonly cpu: string;
  /** Memory, as a Kubernetes quantity. */
  readonly memory: string;
}

export interface TrainingQueuesProps {
  /** Namespace of the training Jobs, where the LocalQueues live. */
  readonly namespace: string;
  /** The GPU pools; pools of one gpu-type add up to one flavor. */
  readonly gpuPools: readonly GpuPoolQuota[];
  /** Projects that get a queue each (DNS-label characters: they become object names). */
  readonly projects: readonly string[];
  /**
   * CPU and memory each project's queue holds (in the `cpu` flavor) before it borrows.
   * @default { cpu: "256", memory: "1Ti" }
   */
  readonly cpuQuotaPerProject?: CpuQuota;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Kueue's view of the training capacity:
 *
 * - a ResourceFlavor per GPU type (its nodes' `gpu-type` label, its taint, so
 *   only pods that tolerate it get the flavor) and one, `cpu`, for the CPU and
 *   memory of every training pod;
 * - a ClusterQueue per project, all in one cohort. The pools' GPUs
 *   (maxSize x gpusPerNode per type) are split evenly between the projects as
 *   nominal quota, so the cohort never admits more than the pools can hold; a
 *   project borrows what the others leave idle and the owner reclaims it by
 *   preemption; inside a project, a higher priority preempts a lower one;
 * - a LocalQueue per project in the training namespace (a Job names it with the
 *   `kueue.x-k8s.io/queue-name` label);
 * - WorkloadPriorityClasses of the same names and values as the PriorityClasses.
 */
export class TrainingQueues extends Construct {
  constructor(scope: Construct, id: string, props: TrainingQueuesProps) {
    super(scope, id);
    const { namespace, projects } = props;
    if (projects.length === 0) throw new Error("TrainingQueues: projects must name at least one project");
    for (const project of projects) {
      if (!DNS_LABEL.test(project) || clusterQueueName(namespace, project).length > 63) {
        throw new Error(
          `TrainingQueues: project "${project}" must be lower-case letters, digits and '-', and short enough for a queue name`,
        );
      }
    }
    if (new Set(projects).size !== projects.length) throw new Error("TrainingQueues: projects must not repeat");
    const gpus = gpusPerType(props.gpuPools);
    const cpuQuota = props.cpuQuotaPerProject ?? { cpu: "256", memory: "1Ti" };

    for (const gpuType of gpus.keys()) {
      kueueObject(this, `Flavor-${gpuType}`, "ResourceFlavor", gpuFlavorName(gpuType), {
        nodeLabels: { [GPU_NODE_LABELS.gpuType]: gpuType },
        nodeTaints: [GPU_TAINT],
      });
    }
    kueueObject(this, "Flavor-cpu", "ResourceFlavor", CPU_FLAVOR, {});

    projects.forEach((project, index) => {
      const name = clusterQueueName(namespace, project);
      kueueObject(this, `ClusterQueue-${project}`, "ClusterQueue", name, {
        cohortName: TRAINING_COHORT,
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } },
        queueingStrategy: "BestEffortFIFO",
        resourceGroups: [
          ...(gpus.size > 0
            ? [
                {
                  coveredResources: [GPU_RESOURCE],
                  flavors: [...gpus].map(([gpuType, total]) => ({
                    name: gpuFlavorName(gpuType),
                    // A quantity string, as the API server keeps it: a number would differ from the stored object on every apply.
                    resources: [{ name: GPU_RESOURCE, nominalQuota: String(evenShare(total, projects.length, index)) }],
                  })),
                },
              ]
            : []),
          {
            coveredResources: ["cpu", "memory"],
            flavors: [
              {
                name: CPU_FLAVOR,
                resources: [
                  { name: "cpu", nominalQuota: cpuQuota.cpu },
                  { name: "memory", nominalQuota: cpuQuota.memory },
                ],
              },
            ],
          },
        ],
        preemption: {
          // The owner of lent quota gets it back: workloads borrowing it are preempted.
          reclaimWithinCohort: "Any",
          // Never preempt another project's workload to borrow beyond one's own quota.
          borrowWithinCohort: { policy: "Never" },
          withinClusterQueue: "LowerPriority",
        },
      });
      new ApiObject(this, `LocalQueue-${project}`, {
        apiVersion: KUEUE_API_VERSION,
        kind: "LocalQueue",
        metadata: { name: localQueueName(project), namespace },
        spec: { clusterQueue: name },
      });
    });

    for (const priority of PRIORITIES) {
      new ApiObject(this, `WorkloadPriorityClass-${priority}`, {
        apiVersion: KUEUE_API_VERSION,
        kind: "WorkloadPriorityClass",
        metadata: { name: priorityClassName(priority) },
        value: priorityValue(priority),
        description: `Training priority ${priority}: orders the queue and preempts lower training priorities of the same project.`,
      });
    }
  }
}

function kueueObject(scope: Construct, id: string, kind: string, name: string, spec: Record<string, unknown>): ApiObject {
  return new ApiObject(scope, id, { apiVersion: KUEUE_API_VERSION, kind, metadata: { name }, spec });
}

/** GPUs per gpu-type, in the order the pools declare the types. */
function gpusPerType(pools: readonly GpuPoolQuota[]): Map<string, number> {
  const gpus = new Map<string, number>();
  for (const { gpuType, maxSize, gpusPerNode } of pools) {
    if (!DNS_LABEL.test(gpuType)) throw new Error(`TrainingQueues: gpuType "${gpuType}" must be lower-case letters, digits and '-'`);
    for (const [field, value] of [
      ["maxSize", maxSize],
      ["gpusPerNode", gpusPerNode],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 0)
        throw new Error(`TrainingQueues: pool ${gpuType} ${field} must be a whole number >= 0, got ${value}`);
    }
    gpus.set(gpuType, (gpus.get(gpuType) ?? 0) + maxSize * gpusPerNode);
  }
  return gpus;
}

/** Project `index`'s share of `total` among `count`: equal parts, the remainder to the first projects, nothing lost. */
function evenShare(total: number, count: number, index: number): number {
  return Math.floor(total / count) + (index < total % count ? 1 : 0);
}
