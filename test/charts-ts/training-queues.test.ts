import { Chart, Testing } from "cdk8s";
import { describe, expect, it } from "vitest";
import { KUEUE_API_VERSION, QUEUE_NAME_LABEL } from "../../charts-ts/kueue-contract.ts";
import { PlatformChart } from "../../charts-ts/platform/platform-chart.ts";
import { TrainingQueues, type TrainingQueuesProps } from "../../charts-ts/platform/training-queues.ts";

// biome-ignore lint/suspicious/noExplicitAny: structural assertions on free-form JSON
type Json = any;

function synthQueues(props: Omit<TrainingQueuesProps, "namespace">): Json[] {
  const chart = new Chart(Testing.app(), "queues");
  new TrainingQueues(chart, "Queues", { namespace: "training", ...props });
  return Testing.synth(chart);
}
const ofKind = (objects: Json[], kind: string): Json[] => objects.filter((object) => object.kind === kind);
const gpuQuota = (clusterQueue: Json, flavor: string): string =>
  clusterQueue.spec.resourceGroups
    .flatMap((group: Json) => group.flavors)
    .find((entry: Json) => entry.name === flavor)
    .resources.find((resource: Json) => resource.name === "nvidia.com/gpu").nominalQuota;

const POOLS = [
  { gpuType: "t4", maxSize: 2, gpusPerNode: 4 },
  { gpuType: "a100", maxSize: 1, gpusPerNode: 8 },
  { gpuType: "t4", maxSize: 1, gpusPerNode: 1 },
];

describe("TrainingQueues", () => {
  const objects = synthQueues({ gpuPools: POOLS, projects: ["vision", "nlp"] });

  it("uses Kueue's v1beta2 API for every object", () => {
    expect(new Set(objects.map((object) => object.apiVersion))).toEqual(new Set([KUEUE_API_VERSION]));
  });

  it("has a flavor per GPU type that pins its nodes and carries their taint, and one for CPU and memory", () => {
    expect(ofKind(objects, "ResourceFlavor").map((flavor) => [flavor.metadata.name, flavor.spec])).toEqual([
      ["gpu-t4", { nodeLabels: { "gpu-type": "t4" }, nodeTaints: [{ key: "nvidia.com/gpu", value: "true", effect: "NoSchedule" }] }],
      ["gpu-a100", { nodeLabels: { "gpu-type": "a100" }, nodeTaints: [{ key: "nvidia.com/gpu", value: "true", effect: "NoSchedule" }] }],
      ["cpu", {}],
    ]);
  });

  it("splits each GPU type's pool capacity (maxSize x gpusPerNode, pools of a type added) between the projects, nothing lost", () => {
    const queues = ofKind(objects, "ClusterQueue");
    expect(queues.map((queue) => queue.metadata.name)).toEqual(["training-project-vision", "training-project-nlp"]);
    // t4: 2x4 + 1x1 = 9 -> 5 + 4; a100: 8 -> 4 + 4.
    // Quantity strings, as the API server keeps them (a number differs from the stored object on every apply).
    expect(queues.map((queue) => [gpuQuota(queue, "gpu-t4"), gpuQuota(queue, "gpu-a100")])).toEqual([
      ["5", "4"],
      ["4", "4"],
    ]);
    const three = ofKind(
      synthQueues({ gpuPools: [{ gpuType: "t4", maxSize: 1, gpusPerNode: 8 }], projects: ["a", "b", "c"] }),
      "ClusterQueue",
    );
    expect(three.map((queue) => gpuQuota(queue, "gpu-t4"))).toEqual(["3", "3", "2"]);
  });

  it("puts every project in one cohort: borrowing idle quota, reclaiming it by preemption, priority preemption inside a project", () => {
    for (const queue of ofKind(objects, "ClusterQueue")) {
      expect(queue.spec.cohortName).toBe("training");
      expect(queue.spec.namespaceSelector).toEqual({ matchLabels: { "kubernetes.io/metadata.name": "training" } });
      expect(queue.spec.preemption).toEqual({
        reclaimWithinCohort: "Any",
        borrowWithinCohort: { policy: "Never" },
        withinClusterQueue: "LowerPriority",
      });
      // No borrowing or lending limit: a project may use all that the others leave idle.
      expect(JSON.stringify(queue.spec.resourceGroups)).not.toMatch(/borrowingLimit|lendingLimit/);
      expect(queue.spec.resourceGroups.map((group: Json) => group.coveredResources)).toEqual([["nvidia.com/gpu"], ["cpu", "memory"]]);
    }
  });

  it("gives each project a LocalQueue in the training namespace that feeds its ClusterQueue", () => {
    expect(ofKind(objects, "LocalQueue").map((queue) => [queue.metadata.namespace, queue.metadata.name, queue.spec.clusterQueue])).toEqual([
      ["training", "project-vision", "training-project-vision"],
      ["training", "project-nlp", "training-project-nlp"],
    ]);
  });

  it("has WorkloadPriorityClasses with the names and values of the training PriorityClasses", () => {
    const priorityClasses = Testing.synth(new PlatformChart(Testing.app(), "platform")).filter(
      (object: Json) => object.kind === "PriorityClass",
    );
    expect(ofKind(objects, "WorkloadPriorityClass").map((wpc) => [wpc.metadata.name, wpc.value])).toEqual(
      priorityClasses.map((pc: Json) => [pc.metadata.name, pc.value]),
    );
    expect(ofKind(objects, "WorkloadPriorityClass").map((wpc) => wpc.metadata.name)).toEqual([
      "training-high",
      "training-default",
      "training-low",
    ]);
  });

  it("has only the CPU resource group when there is no GPU pool", () => {
    const [queue] = ofKind(synthQueues({ gpuPools: [], projects: ["a"] }), "ClusterQueue");
    expect(queue.spec.resourceGroups.map((group: Json) => group.coveredResources)).toEqual([["cpu", "memory"]]);
  });

  it("refuses at synth what Kueue or the queue names could not take", () => {
    expect(() => synthQueues({ gpuPools: POOLS, projects: [] })).toThrow(/at least one project/);
    expect(() => synthQueues({ gpuPools: POOLS, projects: ["Vision"] })).toThrow(/project "Vision"/);
    expect(() => synthQueues({ gpuPools: POOLS, projects: ["a", "a"] })).toThrow(/must not repeat/);
    expect(() => synthQueues({ gpuPools: [{ gpuType: "t4", maxSize: 1.5, gpusPerNode: 8 }], projects: ["a"] })).toThrow(/pool t4 maxSize/);
    expect(() => synthQueues({ gpuPools: [{ gpuType: "T4", maxSize: 1, gpusPerNode: 8 }], projects: ["a"] })).toThrow(/gpuType "T4"/);
  });

  it("names the label a Job carries to be queued", () => {
    expect(QUEUE_NAME_LABEL).toBe("kueue.x-k8s.io/queue-name");
  });
});

describe("PlatformChart with queueing", () => {
  const queues = { gpuPools: POOLS, projects: ["vision"] };
  const on: Json[] = Testing.synth(new PlatformChart(Testing.app(), "platform", { platform: { queueing: true }, queues }));
  const off: Json[] = Testing.synth(new PlatformChart(Testing.app(), "platform"));

  it("makes no PriorityClass preempt: Kueue preempts, among training workloads only", () => {
    expect(ofKind(on, "PriorityClass").map((pc) => pc.preemptionPolicy)).toEqual(["Never", "Never", "Never"]);
    expect(ofKind(off, "PriorityClass").map((pc) => pc.preemptionPolicy)).toEqual([
      "PreemptLowerPriority",
      "PreemptLowerPriority",
      "Never",
    ]);
    expect(ofKind(on, "PriorityClass").map((pc) => pc.value)).toEqual(ofKind(off, "PriorityClass").map((pc) => pc.value));
  });

  it("drops the namespace's GPU ResourceQuota, which would refuse the pods of an admitted Job, and keeps the Job cap", () => {
    const [quotaOn] = ofKind(on, "ResourceQuota");
    const [quotaOff] = ofKind(off, "ResourceQuota");
    expect(Object.keys(quotaOff.spec.hard).sort()).toEqual(["count/jobs.batch", "requests.nvidia.com/gpu"]);
    expect(Object.keys(quotaOn.spec.hard)).toEqual(["count/jobs.batch"]);
  });

  it("adds the queues on, and leaves today's chart untouched off", () => {
    expect(ofKind(on, "ClusterQueue")).toHaveLength(1);
    expect(off.filter((object) => object.apiVersion === KUEUE_API_VERSION)).toEqual([]);
  });

  it("tells the dispatcher through TRAINING_QUEUEING, set only when on", () => {
    const envOf = (objects: Json[]) => ofKind(objects, "Deployment")[0].spec.template.spec.containers[0].env;
    expect(envOf(on)).toContainEqual({ name: "TRAINING_QUEUEING", value: "true" });
    expect(envOf(off).map((env: Json) => env.name)).not.toContain("TRAINING_QUEUEING");
  });

  it("grants the dispatcher Kueue's Workloads, LocalQueues and pending positions only when on", () => {
    const kueueRules = (objects: Json[]) =>
      ofKind(objects, "Role")[0].rules.filter((rule: Json) => rule.apiGroups.some((group: string) => group.includes("kueue")));
    expect(kueueRules(on)).toEqual([
      { apiGroups: ["kueue.x-k8s.io"], resources: ["workloads"], verbs: ["get", "list", "watch", "patch"] },
      { apiGroups: ["kueue.x-k8s.io"], resources: ["localqueues"], verbs: ["get", "list", "watch"] },
      { apiGroups: ["visibility.kueue.x-k8s.io"], resources: ["localqueues/pendingworkloads"], verbs: ["get"] },
    ]);
    expect(kueueRules(off)).toEqual([]);
    // The patch on Workloads comes with the policy that limits it to deactivation.
    const policies = (objects: Json[]) => ofKind(objects, "ValidatingAdmissionPolicy").map((policy) => policy.metadata.name);
    expect(policies(on)).toContain("training-dispatcher-workloads-deactivate-only-training");
    expect(policies(off)).not.toContain("training-dispatcher-workloads-deactivate-only-training");
  });

  it("holds the dispatcher's Jobs to their queue only when on", () => {
    const messages = (objects: Json[]) =>
      ofKind(objects, "ValidatingAdmissionPolicy").flatMap((policy) => (policy.spec.validations ?? []).map((v: Json) => v.message));
    expect(messages(on).filter((message: string) => message.includes("queued by Kueue"))).toHaveLength(1);
    expect(messages(off).filter((message: string) => message.includes("queued by Kueue"))).toEqual([]);
  });

  it("refuses queues without the flag and the flag without queues", () => {
    expect(() => new PlatformChart(Testing.app(), "platform", { platform: { queueing: true } })).toThrow(/needs queues/);
    expect(() => new PlatformChart(Testing.app(), "platform", { queues })).toThrow(/queueing is off/);
  });
});
