/**
 * The contract between the platform's queues (charts-ts/platform/training-queues.ts)
 * and what submits into them (the dispatcher, tests): Kueue's API, the labels a
 * Job carries to be queued, and how queues and flavors are named.
 */
/** The Kueue API version every object here uses; v1beta1 objects would need a conversion webhook. */
export const KUEUE_API_VERSION = "kueue.x-k8s.io/v1beta2";

/** On a Job: the LocalQueue (in the Job's namespace) it is queued in. Without it, Kueue leaves the Job alone. */
export const QUEUE_NAME_LABEL = "kueue.x-k8s.io/queue-name";

/** On a Job: the WorkloadPriorityClass that orders and preempts it among training workloads. */
export const WORKLOAD_PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class";

/** On a Workload: the uid of the Job Kueue made it for; how the dispatcher finds a Job's Workload. */
export const JOB_UID_LABEL = "kueue.x-k8s.io/job-uid";

/** The cohort every project's ClusterQueue joins: idle quota is lent, and reclaimed, only inside it. */
export const TRAINING_COHORT = "training";

/** Flavor of the CPU and memory of every training pod, GPU or not. */
export const CPU_FLAVOR = "cpu";

/** ResourceFlavor of one GPU type (the nodes' `gpu-type` label value). */
export function gpuFlavorName(gpuType: string): string {
  return `gpu-${gpuType}`;
}

/**
 * The queue project a request's `projectId` belongs to: its decimal digits. The stack lists the
 * projects that get queues by these names (`projects: ["5", "7"]`), so project 5's Jobs go to the
 * LocalQueue `project-5`. A request without `projectId` has no queue: while queueing is on it is
 * refused (400 naming `projectId`) rather than sent to a catch-all queue whose quota nobody owns.
 */
export function queueProjectOf(projectId: number): string {
  return String(projectId);
}

/** LocalQueue, in the training namespace, that a project's Jobs name in QUEUE_NAME_LABEL. */
export function localQueueName(project: string): string {
  return `project-${project}`;
}

/** The project's ClusterQueue (cluster-scoped, hence the namespace in its name). */
export function clusterQueueName(namespace: string, project: string): string {
  return `${namespace}-project-${project}`;
}
