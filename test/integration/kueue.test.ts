// Kueue in the test control plane (test/cluster/up.sh), driven with raw Jobs: the
// queues come from the TrainingQueues construct, rendered for the test cluster's
// t4 node (gpu-node-1, 8 GPUs) and two projects, A and B, so each owns 4 GPUs of
// the gpu-t4 flavor and may borrow the other's idle 4. Pods run for an hour
// (kwok-run-duration) unless a test ends them, so only Kueue decides what runs.
import { request } from "node:https";
import {
  ApiextensionsV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  type V1Job,
} from "@kubernetes/client-node";
import { App, Chart } from "cdk8s";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import {
  KUEUE_API_VERSION,
  localQueueName,
  QUEUE_NAME_LABEL,
  TRAINING_COHORT,
  WORKLOAD_PRIORITY_CLASS_LABEL,
} from "../../charts-ts/kueue-contract.ts";
import { TrainingQueues } from "../../charts-ts/platform/training-queues.ts";
import { GPU_RESOURCE, GPU_TAINT } from "../../charts-ts/training-job.ts";
import { applyObjects } from "./platform.ts";
import { until } from "./until.ts";

const RUN_ID = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`;
const NAMESPACE = `kueue-${RUN_ID}`;
const [KUEUE_GROUP, KUEUE_VERSION] = KUEUE_API_VERSION.split("/") as [string, string];
/** gpu-node-1 (test/cluster/nodes.yaml). */
const T4_POOL = { gpuType: "t4", maxSize: 1, gpusPerNode: 8 };

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(inject("kubeconfig"));
const batch = kubeConfig.makeApiClient(BatchV1Api);
const core = kubeConfig.makeApiClient(CoreV1Api);
const custom = kubeConfig.makeApiClient(CustomObjectsApi);

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
}
interface Workload extends KubernetesObject {
  readonly status?: {
    readonly conditions?: readonly Condition[];
    readonly admission?: { readonly podSetAssignments: readonly { readonly flavors?: Readonly<Record<string, string>> }[] };
  };
}
interface PendingWorkload {
  readonly metadata: { readonly name: string; readonly ownerReferences?: readonly { readonly name: string }[] };
  readonly positionInLocalQueue: number;
  readonly positionInClusterQueue: number;
}

const condition = (workload: Workload | undefined, type: string) => workload?.status?.conditions?.find((c) => c.type === type);

async function workloads(): Promise<Workload[]> {
  const list = await custom.listNamespacedCustomObject({
    group: KUEUE_GROUP,
    version: KUEUE_VERSION,
    namespace: NAMESPACE,
    plural: "workloads",
  });
  return (list as { items: Workload[] }).items;
}

async function workloadOf(jobName: string): Promise<Workload | undefined> {
  return (await workloads()).find((workload) =>
    workload.metadata?.ownerReferences?.some((owner) => owner.kind === "Job" && owner.name === jobName),
  );
}

const isAdmitted = async (jobName: string) => condition(await workloadOf(jobName), "Admitted")?.status === "True";

function waitRunning(jobName: string): Promise<true> {
  return until(`${jobName}'s pod running`, async () => {
    const pods = await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `job-name=${jobName}` });
    return pods.items.some((pod) => pod.status?.phase === "Running");
  });
}

async function waitAdmitted(jobName: string): Promise<void> {
  await until(`${jobName} admitted by Kueue`, () => isAdmitted(jobName));
  await waitRunning(jobName);
}

/** Waits until Kueue has tried and failed to admit the Job; returns its QuotaReserved condition. */
function waitPending(jobName: string): Promise<Condition> {
  return until(`${jobName} pending with a reason`, async () => {
    const reserved = condition(await workloadOf(jobName), "QuotaReserved");
    // Reason Pending: Kueue's scheduler tried and found no room (an eviction first says Preempted).
    return reserved?.status === "False" && reserved.reason === "Pending" ? reserved : undefined;
  });
}

/** GET on the API server, for the aggregated visibility API that no generated client covers. */
async function getRaw<T>(path: string): Promise<T> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const url = new URL(path, cluster.server);
  const options: Parameters<typeof request>[1] = { method: "GET" };
  await kubeConfig.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () =>
        res.statusCode === 200 ? resolve(JSON.parse(body) as T) : reject(new Error(`GET ${path}: ${res.statusCode} ${body}`)),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

/** The visibility API's pending workloads of a project's LocalQueue, as job name -> position (0 = next). */
async function positions(project: string): Promise<Record<string, number>> {
  const { items } = await getRaw<{ items: PendingWorkload[] }>(
    `/apis/visibility.kueue.x-k8s.io/v1beta2/namespaces/${NAMESPACE}/localqueues/${localQueueName(project)}/pendingworkloads`,
  );
  return Object.fromEntries(
    items.map((item) => [item.metadata.ownerReferences?.[0]?.name ?? item.metadata.name, item.positionInLocalQueue]),
  );
}

let seq = 0;
/** Submits a Job of `gpus` t4 GPUs to a project's queue (or to none), suspended, as a queued Job must be. */
async function submit(project: string | undefined, gpus: number, priority = "default"): Promise<string> {
  seq += 1;
  const name = `${project ?? "plain"}-${priority}-${seq}`;
  const job: V1Job = {
    metadata: {
      name,
      namespace: NAMESPACE,
      labels:
        project === undefined
          ? {}
          : { [QUEUE_NAME_LABEL]: localQueueName(project), [WORKLOAD_PRIORITY_CLASS_LABEL]: `training-${priority}` },
    },
    spec: {
      suspend: project !== undefined,
      backoffLimit: 0,
      template: {
        metadata: { labels: { "kwok-run-duration": "1h" } },
        spec: {
          restartPolicy: "Never",
          terminationGracePeriodSeconds: 0,
          // As TrainingJob renders them: only a GPU job tolerates the GPU taint.
          ...(gpus > 0 && { tolerations: [{ key: GPU_TAINT.key, operator: "Exists", effect: GPU_TAINT.effect }] }),
          containers: [
            {
              name: "trainer",
              image: "trainer:test",
              resources: {
                requests: { cpu: "1", memory: "1Gi", ...(gpus > 0 && { [GPU_RESOURCE]: String(gpus) }) },
                limits: { cpu: "1", memory: "1Gi", ...(gpus > 0 && { [GPU_RESOURCE]: String(gpus) }) },
              },
            },
          ],
        },
      },
    },
  };
  await batch.createNamespacedJob({ namespace: NAMESPACE, body: job });
  return name;
}

/** Ends a Job's running pod as a trainer that exits 0 would: the Job completes, its Workload finishes. */
async function finish(jobName: string): Promise<void> {
  const pods = await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `job-name=${jobName}` });
  const pod = pods.items.find((p) => p.status?.phase === "Running");
  if (!pod?.metadata?.name || !pod.status) throw new Error(`${jobName} has no running pod`);
  const now = new Date();
  await core.replaceNamespacedPodStatus({
    name: pod.metadata.name,
    namespace: NAMESPACE,
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
          state: { terminated: { exitCode: 0, reason: "Completed", startedAt: status.state?.running?.startedAt ?? now, finishedAt: now } },
        })),
      },
    },
  });
}

/** Removes every Job of the namespace and waits until Kueue has released their quota. */
async function clearJobs(): Promise<void> {
  await batch.deleteCollectionNamespacedJob({ namespace: NAMESPACE, propagationPolicy: "Background", gracePeriodSeconds: 0 });
  await until("the namespace's Workloads gone", async () => (await workloads()).length === 0);
  await until("the namespace's pods gone", async () => (await core.listNamespacedPod({ namespace: NAMESPACE })).items.length === 0);
}

const queueObjects = (): KubernetesObject[] => {
  const chart = new Chart(new App(), "queues");
  new TrainingQueues(chart, "Queues", { namespace: NAMESPACE, gpuPools: [T4_POOL], projects: ["a", "b"] });
  return chart.toJson() as KubernetesObject[];
};
const clusterQueues = () => queueObjects().filter((object) => object.kind === "ClusterQueue");

beforeAll(async () => {
  // Kueue's CRDs come with the cluster (up.sh), not with this file.
  await kubeConfig.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: "clusterqueues.kueue.x-k8s.io" });
  // Another run's queues in the cohort would lend quota and change every figure below.
  const existing = (await custom.listClusterCustomObject({ group: KUEUE_GROUP, version: KUEUE_VERSION, plural: "clusterqueues" })) as {
    items: { metadata: { name: string }; spec: { cohortName?: string } }[];
  };
  const strays = existing.items.filter((queue) => queue.spec.cohortName === TRAINING_COHORT).map((queue) => queue.metadata.name);
  if (strays.length > 0)
    throw new Error(
      `ClusterQueues of an interrupted run are in cohort ${TRAINING_COHORT}: ${strays.join(", ")}; delete them and their namespaces`,
    );
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  await applyObjects(kubeConfig, queueObjects());
  await until("both ClusterQueues active", async () => {
    for (const queue of clusterQueues()) {
      const object = (await custom.getClusterCustomObject({
        group: KUEUE_GROUP,
        version: KUEUE_VERSION,
        plural: "clusterqueues",
        name: queue.metadata?.name ?? "",
      })) as Workload;
      if (condition(object, "Active")?.status !== "True") return false;
    }
    return true;
  });
});

afterAll(async () => {
  // Other runs' queues in the same cohort would lend them quota: leave none behind.
  for (const queue of clusterQueues()) {
    await custom.deleteClusterCustomObject({
      group: KUEUE_GROUP,
      version: KUEUE_VERSION,
      plural: "clusterqueues",
      name: queue.metadata?.name ?? "",
    });
  }
  await core.deleteNamespace({ name: NAMESPACE });
});

describe("Kueue on the test control plane", () => {
  // Each test starts with the t4 flavor idle, whatever the one before left running.
  afterEach(clearJobs);

  it("leaves a Job without the queue label alone: never suspended, no Workload", async () => {
    const name = await submit(undefined, 0);
    await waitRunning(name);
    expect((await batch.readNamespacedJob({ name, namespace: NAMESPACE })).spec?.suspend).toBe(false);
    expect(await workloadOf(name)).toBeUndefined();
  });

  it("gives a GPU Job its GPU type's flavor for GPUs and the cpu flavor for CPU and memory; a CPU-only Job only the cpu flavor", async () => {
    const gpu = await submit("a", 2);
    const cpuOnly = await submit("a", 0);
    await waitAdmitted(gpu);
    await waitAdmitted(cpuOnly);
    const flavors = async (job: string) => (await workloadOf(job))?.status?.admission?.podSetAssignments[0]?.flavors;
    expect(await flavors(gpu)).toEqual({ [GPU_RESOURCE]: "gpu-t4", cpu: "cpu", memory: "cpu" });
    expect(await flavors(cpuOnly)).toEqual({ cpu: "cpu", memory: "cpu" });
    const nodeOf = async (job: string) =>
      (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `job-name=${job}` })).items[0]?.spec?.nodeName;
    expect(await nodeOf(gpu)).toBe("gpu-node-1");
    expect(await nodeOf(cpuOnly)).toBe("cpu-node-1");
  });

  it("holds B's Jobs for quota while A fills the t4 flavor, in order (positions 0 and 1), and admits B's first when A's Job finishes", async () => {
    const a = await submit("a", 8);
    await waitAdmitted(a);

    const b1 = await submit("b", 8);
    const pending = await waitPending(b1);
    expect(pending.message).toMatch(/insufficient unused quota for nvidia\.com\/gpu in flavor gpu-t4, \d+ more needed/);
    await until("b1 first in B's queue", async () => (await positions("b"))[b1] === 0);

    // Kueue orders a queue by Workload creation time, which has whole seconds: two
    // Workloads of one second are in no defined order. B's second Job comes later.
    const b1Created = Date.parse(String((await workloadOf(b1))?.metadata?.creationTimestamp));
    await until("a later second than b1's Workload", () => Date.now() >= b1Created + 1000);
    const b2 = await submit("b", 8);
    await waitPending(b2);
    expect(await until("b2 second in B's queue", async () => ((await positions("b"))[b2] === 1 ? positions("b") : undefined))).toEqual({
      [b1]: 0,
      [b2]: 1,
    });
    expect((await batch.readNamespacedJob({ name: b1, namespace: NAMESPACE })).spec?.suspend).toBe(true);

    await finish(a);
    await waitAdmitted(b1);
    expect(await isAdmitted(b2)).toBe(false);
    await until("b2 first in B's queue once b1 runs", async () => (await positions("b"))[b2] === 0);
    expect(await positions("b")).toEqual({ [b2]: 0 });
  });

  it("lets A borrow B's idle quota and takes it back by preemption when B submits within its own", async () => {
    const a = await submit("a", 8);
    await waitAdmitted(a);

    const b = await submit("b", 4);
    const evicted = await until("A's Workload evicted", async () => {
      const found = condition(await workloadOf(a), "Evicted");
      return found?.status === "True" ? found : undefined;
    });
    expect(evicted.reason).toBe("Preempted");
    expect(condition(await workloadOf(a), "Preempted")?.reason).toBe("InCohortReclamation");
    await waitAdmitted(b);
    // A is queued again, not failed: its Job is suspended and waits for quota.
    const requeued = await waitPending(a);
    expect(requeued.message).toMatch(/insufficient unused quota for nvidia\.com\/gpu in flavor gpu-t4/);
    const job = await batch.readNamespacedJob({ name: a, namespace: NAMESPACE });
    expect(job.spec?.suspend).toBe(true);
    expect(job.status?.failed ?? 0).toBe(0);
  });

  it("preempts a low-priority Job for a high one of the same project, and never another project's", async () => {
    const b = await submit("b", 4, "low");
    await waitAdmitted(b);
    const low = await submit("a", 4, "low");
    await waitAdmitted(low);

    const high = await submit("a", 4, "high");
    await until("the low Job preempted", async () => condition(await workloadOf(low), "Evicted")?.status === "True");
    expect(condition(await workloadOf(low), "Preempted")?.reason).toBe("InClusterQueue");
    await waitAdmitted(high);
    // B's Job has the same low priority but lives within B's own quota: untouched.
    expect(condition(await workloadOf(b), "Evicted")?.status).not.toBe("True");
    expect(await isAdmitted(b)).toBe(true);
  });
});
