// What the Kueue integration tests read and do on the test cluster, for one namespace:
// its Workloads and their conditions, the visibility API's queue positions, pods run to
// completion as kwok would not on its own, and the namespace's queues set up and removed.
import {
  ApiextensionsV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { KUEUE_API_VERSION, localQueueName, TRAINING_COHORT } from "../../charts-ts/kueue-contract.ts";
import { pendingPositions } from "../../dispatcher/live/kueue-api.ts";
import { applyObjects } from "./platform.ts";
import { until } from "./until.ts";

export const [KUEUE_GROUP, KUEUE_VERSION] = KUEUE_API_VERSION.split("/") as [string, string];
/** gpu-node-1 (test/cluster/nodes.yaml), as a stack would declare its pool. */
export const T4_POOL = { gpuType: "t4", maxSize: 1, gpusPerNode: 8 };

export interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
}
export interface Workload extends KubernetesObject {
  readonly spec?: { readonly active?: boolean };
  readonly status?: {
    readonly conditions?: readonly Condition[];
    readonly admission?: { readonly podSetAssignments: readonly { readonly flavors?: Readonly<Record<string, string>> }[] };
  };
}

export const condition = (workload: Workload | undefined, type: string) => workload?.status?.conditions?.find((c) => c.type === type);

export class KueueNamespace {
  readonly namespace: string;
  private readonly kubeConfig: KubeConfig;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig, namespace: string) {
    this.kubeConfig = kubeConfig;
    this.namespace = namespace;
    this.batch = kubeConfig.makeApiClient(BatchV1Api);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  /**
   * Applies `objects` (the namespace first, if among them) once no other run's ClusterQueue is in
   * the cohort, and waits until this namespace's ClusterQueues are active.
   */
  async setUp(objects: readonly KubernetesObject[]): Promise<void> {
    // Kueue's CRDs come with the cluster (up.sh), not with the tests.
    await this.kubeConfig.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: "clusterqueues.kueue.x-k8s.io" });
    // Another run's queues in the cohort would lend quota and change every figure.
    const existing = (await this.custom.listClusterCustomObject({
      group: KUEUE_GROUP,
      version: KUEUE_VERSION,
      plural: "clusterqueues",
    })) as {
      items: { metadata: { name: string }; spec: { cohortName?: string } }[];
    };
    const strays = existing.items.filter((queue) => queue.spec.cohortName === TRAINING_COHORT).map((queue) => queue.metadata.name);
    if (strays.length > 0)
      throw new Error(
        `ClusterQueues of an interrupted run are in cohort ${TRAINING_COHORT}: ${strays.join(", ")}; delete them and their namespaces`,
      );
    if (!objects.some((object) => object.kind === "Namespace"))
      await this.core.createNamespace({ body: { metadata: { name: this.namespace } } });
    await applyObjects(this.kubeConfig, objects);
    await until("the ClusterQueues active", async () => {
      for (const name of clusterQueueNames(objects)) {
        const queue = (await this.custom.getClusterCustomObject({
          group: KUEUE_GROUP,
          version: KUEUE_VERSION,
          plural: "clusterqueues",
          name,
        })) as Workload;
        if (condition(queue, "Active")?.status !== "True") return false;
      }
      return true;
    });
  }

  /** Removes the ClusterQueues among `objects` (other runs' queues in the cohort would borrow them) and the namespace. */
  async tearDown(objects: readonly KubernetesObject[]): Promise<void> {
    // A ClusterQueue goes only once its Workloads have (Kueue's finalizer), and the next file must not
    // find it in the cohort: the Jobs first, rather than wait for the namespace's slower deletion.
    await this.clearJobs();
    for (const name of clusterQueueNames(objects)) {
      await this.custom.deleteClusterCustomObject({ group: KUEUE_GROUP, version: KUEUE_VERSION, plural: "clusterqueues", name });
    }
    await this.core.deleteNamespace({ name: this.namespace });
    await until("the ClusterQueues gone", async () => {
      const { items } = (await this.custom.listClusterCustomObject({
        group: KUEUE_GROUP,
        version: KUEUE_VERSION,
        plural: "clusterqueues",
      })) as {
        items: KubernetesObject[];
      };
      const names = new Set(clusterQueueNames(objects));
      return !items.some((queue) => names.has(queue.metadata?.name ?? ""));
    });
  }

  async workloads(): Promise<Workload[]> {
    const list = await this.custom.listNamespacedCustomObject({
      group: KUEUE_GROUP,
      version: KUEUE_VERSION,
      namespace: this.namespace,
      plural: "workloads",
    });
    return (list as { items: Workload[] }).items;
  }

  async workloadOf(jobName: string): Promise<Workload | undefined> {
    return (await this.workloads()).find((workload) =>
      workload.metadata?.ownerReferences?.some((owner) => owner.kind === "Job" && owner.name === jobName),
    );
  }

  async isAdmitted(jobName: string): Promise<boolean> {
    return condition(await this.workloadOf(jobName), "Admitted")?.status === "True";
  }

  waitRunning(jobName: string): Promise<true> {
    return until(`${jobName}'s pod running`, async () => {
      const pods = await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: `job-name=${jobName}` });
      return pods.items.some((pod) => pod.status?.phase === "Running");
    });
  }

  async waitAdmitted(jobName: string): Promise<void> {
    await until(`${jobName} admitted by Kueue`, () => this.isAdmitted(jobName));
    await this.waitRunning(jobName);
  }

  /** Waits until Kueue has tried and failed to admit the Job; returns its QuotaReserved condition. */
  waitPending(jobName: string): Promise<Condition> {
    return until(`${jobName} pending with a reason`, async () => {
      const reserved = condition(await this.workloadOf(jobName), "QuotaReserved");
      // Reason Pending: Kueue's scheduler tried and found no room (an eviction first says Preempted).
      return reserved?.status === "False" && reserved.reason === "Pending" ? reserved : undefined;
    });
  }

  /** The visibility API's pending workloads of a project's LocalQueue, as job name -> position (0 = next). */
  async positions(project: string): Promise<Record<string, number>> {
    const byWorkload = await pendingPositions(this.kubeConfig, this.namespace, localQueueName(project));
    const owners = new Map(
      (await this.workloads()).map((workload) => [workload.metadata?.name, workload.metadata?.ownerReferences?.[0]?.name]),
    );
    return Object.fromEntries([...byWorkload].map(([name, position]) => [owners.get(name) ?? name, position]));
  }

  /** Ends a Job's running pod as a trainer that exits 0 would: the Job completes, its Workload finishes. */
  async finish(jobName: string): Promise<void> {
    const pods = await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: `job-name=${jobName}` });
    const pod = pods.items.find((p) => p.status?.phase === "Running");
    if (!pod?.metadata?.name || !pod.status) throw new Error(`${jobName} has no running pod`);
    const now = new Date();
    await this.core.replaceNamespacedPodStatus({
      name: pod.metadata.name,
      namespace: this.namespace,
      body: {
        ...pod,
        status: {
          ...pod.status,
          phase: "Succeeded",
          conditions: (pod.status.conditions ?? []).map((c) =>
            c.type === "Ready" || c.type === "ContainersReady" ? { ...c, status: "False" } : c,
          ),
          containerStatuses: (pod.status.containerStatuses ?? []).map((status) => ({
            ...status,
            ready: false,
            started: false,
            state: {
              terminated: { exitCode: 0, reason: "Completed", startedAt: status.state?.running?.startedAt ?? now, finishedAt: now },
            },
          })),
        },
      },
    });
  }

  /** Removes every Job of the namespace and waits until Kueue has released their quota. */
  async clearJobs(): Promise<void> {
    await this.batch.deleteCollectionNamespacedJob({ namespace: this.namespace, propagationPolicy: "Background", gracePeriodSeconds: 0 });
    await until("the namespace's Workloads gone", async () => (await this.workloads()).length === 0);
    await until(
      "the namespace's Job pods gone",
      async () => (await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: "job-name" })).items.length === 0,
    );
  }
}

function clusterQueueNames(objects: readonly KubernetesObject[]): string[] {
  return objects.filter((object) => object.kind === "ClusterQueue").map((object) => object.metadata?.name ?? "");
}
