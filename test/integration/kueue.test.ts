// Kueue in the test control plane (test/cluster/up.sh), driven with raw Jobs: the
// queues come from the TrainingQueues construct, rendered for the test cluster's
// t4 node (gpu-node-1, 8 GPUs) and two projects, A and B, so each owns 4 GPUs of
// the gpu-t4 flavor and may borrow the other's idle 4. Pods run for an hour
// (kwok-run-duration) unless a test ends them, so only Kueue decides what runs.
import { BatchV1Api, CoreV1Api, KubeConfig, type KubernetesObject, type V1Job } from "@kubernetes/client-node";
import { App, Chart } from "cdk8s";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { localQueueName, QUEUE_NAME_LABEL, WORKLOAD_PRIORITY_CLASS_LABEL } from "../../charts-ts/kueue-contract.ts";
import { TrainingQueues } from "../../charts-ts/platform/training-queues.ts";
import { GPU_RESOURCE, GPU_TAINT } from "../../charts-ts/training-job.ts";
import { condition, KueueNamespace, T4_POOL } from "./kueue-cluster.ts";
import { until } from "./until.ts";

const RUN_ID = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`;
const NAMESPACE = `kueue-${RUN_ID}`;

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(inject("kubeconfig"));
const batch = kubeConfig.makeApiClient(BatchV1Api);
const core = kubeConfig.makeApiClient(CoreV1Api);
const kueue = new KueueNamespace(kubeConfig, NAMESPACE);
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

const queueObjects = (): KubernetesObject[] => {
  const chart = new Chart(new App(), "queues");
  new TrainingQueues(chart, "Queues", { namespace: NAMESPACE, gpuPools: [T4_POOL], projects: ["a", "b"] });
  return chart.toJson() as KubernetesObject[];
};

beforeAll(() => kueue.setUp(queueObjects()));
afterAll(() => kueue.tearDown(queueObjects()));

describe("Kueue on the test control plane", () => {
  // Each test starts with the t4 flavor idle, whatever the one before left running.
  afterEach(() => kueue.clearJobs());

  it("leaves a Job without the queue label alone: never suspended, no Workload", async () => {
    const name = await submit(undefined, 0);
    await kueue.waitRunning(name);
    expect((await batch.readNamespacedJob({ name, namespace: NAMESPACE })).spec?.suspend).toBe(false);
    expect(await kueue.workloadOf(name)).toBeUndefined();
  });

  it("gives a GPU Job its GPU type's flavor for GPUs and the cpu flavor for CPU and memory; a CPU-only Job only the cpu flavor", async () => {
    const gpu = await submit("a", 2);
    const cpuOnly = await submit("a", 0);
    await kueue.waitAdmitted(gpu);
    await kueue.waitAdmitted(cpuOnly);
    const flavors = async (job: string) => (await kueue.workloadOf(job))?.status?.admission?.podSetAssignments[0]?.flavors;
    expect(await flavors(gpu)).toEqual({ [GPU_RESOURCE]: "gpu-t4", cpu: "cpu", memory: "cpu" });
    expect(await flavors(cpuOnly)).toEqual({ cpu: "cpu", memory: "cpu" });
    const nodeOf = async (job: string) =>
      (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `job-name=${job}` })).items[0]?.spec?.nodeName;
    expect(await nodeOf(gpu)).toBe("gpu-node-1");
    expect(await nodeOf(cpuOnly)).toBe("cpu-node-1");
  });

  it("holds B's Jobs for quota while A fills the t4 flavor, in order (positions 0 and 1), and admits B's first when A's Job finishes", async () => {
    const a = await submit("a", 8);
    await kueue.waitAdmitted(a);

    const b1 = await submit("b", 8);
    const pending = await kueue.waitPending(b1);
    expect(pending.message).toMatch(/insufficient unused quota for nvidia\.com\/gpu in flavor gpu-t4, \d+ more needed/);
    await until("b1 first in B's queue", async () => (await kueue.positions("b"))[b1] === 0);

    // Kueue orders a queue by Workload creation time, which has whole seconds: two
    // Workloads of one second are in no defined order. B's second Job comes later.
    const b1Created = Date.parse(String((await kueue.workloadOf(b1))?.metadata?.creationTimestamp));
    await until("a later second than b1's Workload", () => Date.now() >= b1Created + 1000);
    const b2 = await submit("b", 8);
    await kueue.waitPending(b2);
    expect(
      await until("b2 second in B's queue", async () => ((await kueue.positions("b"))[b2] === 1 ? kueue.positions("b") : undefined)),
    ).toEqual({
      [b1]: 0,
      [b2]: 1,
    });
    expect((await batch.readNamespacedJob({ name: b1, namespace: NAMESPACE })).spec?.suspend).toBe(true);

    await kueue.finish(a);
    await kueue.waitAdmitted(b1);
    expect(await kueue.isAdmitted(b2)).toBe(false);
    await until("b2 first in B's queue once b1 runs", async () => (await kueue.positions("b"))[b2] === 0);
    expect(await kueue.positions("b")).toEqual({ [b2]: 0 });
  });

  it("lets A borrow B's idle quota and takes it back by preemption when B submits within its own", async () => {
    const a = await submit("a", 8);
    await kueue.waitAdmitted(a);

    const b = await submit("b", 4);
    const evicted = await until("A's Workload evicted", async () => {
      const found = condition(await kueue.workloadOf(a), "Evicted");
      return found?.status === "True" ? found : undefined;
    });
    expect(evicted.reason).toBe("Preempted");
    expect(condition(await kueue.workloadOf(a), "Preempted")?.reason).toBe("InCohortReclamation");
    await kueue.waitAdmitted(b);
    // A is queued again, not failed: its Job is suspended and waits for quota.
    const requeued = await kueue.waitPending(a);
    expect(requeued.message).toMatch(/insufficient unused quota for nvidia\.com\/gpu in flavor gpu-t4/);
    const job = await batch.readNamespacedJob({ name: a, namespace: NAMESPACE });
    expect(job.spec?.suspend).toBe(true);
    expect(job.status?.failed ?? 0).toBe(0);
  });

  it("preempts a low-priority Job for a high one of the same project, and never another project's", async () => {
    const b = await submit("b", 4, "low");
    await kueue.waitAdmitted(b);
    const low = await submit("a", 4, "low");
    await kueue.waitAdmitted(low);

    const high = await submit("a", 4, "high");
    await until("the low Job preempted", async () => condition(await kueue.workloadOf(low), "Evicted")?.status === "True");
    expect(condition(await kueue.workloadOf(low), "Preempted")?.reason).toBe("InClusterQueue");
    await kueue.waitAdmitted(high);
    // B's Job has the same low priority but lives within B's own quota: untouched.
    expect(condition(await kueue.workloadOf(b), "Evicted")?.status).not.toBe("True");
    expect(await kueue.isAdmitted(b)).toBe(true);
  });
});
