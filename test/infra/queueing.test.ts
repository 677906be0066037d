/**
 * Kueue and the training queues in the stacks, declared against mocks: the
 * pinned chart and its values, the order (queues after Kueue), the pools
 * turned into flavors and quotas, queueing off, bad queueing config.
 */
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { KUEUE_API_VERSION } from "../../charts-ts/kueue-contract.ts";
import { GPU_RESOURCE } from "../../charts-ts/training-job.ts";
import { KUEUE_NAMESPACE } from "../../infra/addons/kueue.ts";
import { loadStackConfig, StackConfigError } from "../../infra/config/load-stack-config.ts";
import { HELM_CHARTS } from "../../infra/helm-charts.ts";
import { platform } from "../../infra/program.ts";
import { type DeclaredResource, declare, deployedStack, type Inputs, PROJECT, type StackConfigValues, stackFiles } from "./pulumi-mocks.ts";

const RELEASE = "kubernetes:helm.sh/v3:Release";
const CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup";

/** A stack file's config with some keys replaced (JSON values, as Pulumi hands structured config). */
function stackConfig(stack: string, overrides: Readonly<Record<string, unknown>> = {}): StackConfigValues {
  const config = deployedStack(stackFiles().get(stack) as string);
  const values = { ...config.values };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete values[`${PROJECT}:${key}`];
    else values[`${PROJECT}:${key}`] = JSON.stringify(value);
  }
  return { values, secretKeys: config.secretKeys };
}

const declared = new Map<string, Promise<DeclaredResource[]>>();
function resourcesOf(stack: string): Promise<DeclaredResource[]> {
  let resources = declared.get(stack);
  if (!resources) {
    resources = declare(stackConfig(stack), () => platform(loadStackConfig()), stack);
    declared.set(stack, resources);
  }
  return resources;
}

function only(resources: DeclaredResource[], type: string, name: string): DeclaredResource {
  const found = resources.filter((resource) => resource.type === type && resource.name === name);
  if (found.length !== 1) throw new Error(`expected one ${type} named ${name}, found ${found.length}`);
  return found[0] as DeclaredResource;
}

const objectsOf = (resources: DeclaredResource[], group: string): Inputs[] => only(resources, CONFIG_GROUP, group).inputs.objs;
const named = (objects: Inputs[], kind: string) =>
  objects
    .filter((object) => object.kind === kind)
    .map((object) => object.metadata.name)
    .sort();
const kueueRelease = (resources: DeclaredResource[]) => resources.find((r) => r.type === RELEASE && r.inputs.name === "kueue");
const everyObject = (resources: DeclaredResource[]): Inputs[] =>
  resources.filter((resource) => resource.type === CONFIG_GROUP).flatMap((resource) => resource.inputs.objs);

/** What the stack files say: their GPU pools (maxSize x gpusPerNode per type), projects and Kueue replicas. */
const QUEUEING_STACKS = {
  // t4: g4dn.xlarge (1 GPU) x 2
  "dev-eks": { gpus: { t4: 2 }, projects: ["1", "2"], replicas: 1 },
  // a10g: g5.2xlarge (1) x (8 + 16 spot); a100: p4d.24xlarge (8) x 2
  "prod-eks": { gpus: { a10g: 24, a100: 16 }, projects: ["1", "2", "3"], replicas: 2 },
  // l4: 1 x 16 nodes (a total across zones); a100: 1 x 4
  "prod-gke": { gpus: { l4: 16, a100: 4 }, projects: ["1", "2", "3"], replicas: 2 },
} as const;

describe.each(Object.entries(QUEUEING_STACKS))("queueing on: %s", (stack, expected) => {
  it("installs Kueue 0.17.0 from its official OCI chart into its own namespace", async () => {
    const resources = await resourcesOf(stack);
    const release = kueueRelease(resources);
    expect(release?.inputs).toMatchObject({
      chart: "oci://registry.k8s.io/kueue/charts/kueue",
      version: "0.17.0",
      namespace: KUEUE_NAMESPACE,
      timeout: 600,
    });
    expect(HELM_CHARTS.kueue.version).toBe("0.17.0");
    expect(release?.inputs.repositoryOpts).toBeUndefined();
    expect(only(resources, "kubernetes:core/v1:Namespace", "kueue").inputs.metadata).toEqual({
      name: KUEUE_NAMESPACE,
      labels: { "pod-security.kubernetes.io/enforce": "restricted" },
    });
    expect(release?.dependencies).toContain("kubernetes:core/v1:Namespace kueue");
    const { controllerManager } = release?.inputs.values ?? {};
    expect(controllerManager.manager.image).toEqual({
      repository: "registry.k8s.io/kueue/kueue",
      tag: "v0.17.0",
      pullPolicy: "IfNotPresent",
    });
    expect(controllerManager.replicas).toBe(expected.replicas);
    expect(controllerManager.podDisruptionBudget).toEqual({ enabled: expected.replicas > 1, minAvailable: 1 });
    const { requests, limits } = controllerManager.manager.resources;
    expect(requests).toEqual({ cpu: "500m", memory: "1Gi" });
    expect(limits.memory).toBe(requests.memory);
  });

  it("configures Kueue for queued training Jobs only: batch/job, the queue label required, the training namespace alone", async () => {
    const { values } = kueueRelease(await resourcesOf(stack))?.inputs ?? {};
    // The chart reads this text with Helm's fromYaml to scope its webhooks: it must be YAML.
    const configuration = parse(values.managerConfig.controllerManagerConfigYaml);
    expect(configuration).toMatchObject({
      apiVersion: "config.kueue.x-k8s.io/v1beta2",
      kind: "Configuration",
      manageJobsWithoutQueueName: false,
      managedJobsNamespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "training" } },
      integrations: { frameworks: ["batch/job"] },
      leaderElection: { leaderElect: true },
      webhook: { port: 9443 },
    });
    // The chart's own default (pods, Deployments, StatefulSets, ... with failurePolicy Fail) must not come back.
    expect(configuration.integrations.frameworks).toEqual(["batch/job"]);
    expect(configuration.internalCertManagement).toBeUndefined();
    expect(values.enableCertManager).toBeUndefined();
  });

  it("applies the queues after Kueue is ready and after the training namespace exists", async () => {
    const resources = await resourcesOf(stack);
    const queues = only(resources, CONFIG_GROUP, "training-queues");
    expect(queues.dependencies).toContain(`${RELEASE} kueue`);
    expect(queues.dependencies).toContain(`${CONFIG_GROUP} training-namespace`);
    // Nothing else waits for Kueue, and no Kueue object is applied before it.
    expect(only(resources, CONFIG_GROUP, "training-platform").dependencies).not.toContain(`${RELEASE} kueue`);
    const elsewhere = resources
      .filter((resource) => resource.type === CONFIG_GROUP && resource.name !== "training-queues")
      .flatMap((resource) => resource.inputs.objs)
      .filter((object: Inputs) => object.apiVersion === KUEUE_API_VERSION);
    expect(elsewhere).toEqual([]);
  });

  it("turns the GPU pools into a flavor per GPU type and splits maxSize x gpusPerNode between the projects", async () => {
    const objects = objectsOf(await resourcesOf(stack), "training-queues");
    const types = Object.keys(expected.gpus);
    expect(named(objects, "ResourceFlavor")).toEqual([...types.map((type) => `gpu-${type}`), "cpu"].sort());
    expect(named(objects, "ClusterQueue")).toEqual(expected.projects.map((project) => `training-project-${project}`));
    expect(named(objects, "LocalQueue")).toEqual(expected.projects.map((project) => `project-${project}`));
    expect(named(objects, "WorkloadPriorityClass")).toEqual(["training-default", "training-high", "training-low"]);
    const totals: Record<string, number> = {};
    for (const queue of objects.filter((object) => object.kind === "ClusterQueue")) {
      const gpuGroup = queue.spec.resourceGroups.find((group: Inputs) => group.coveredResources.includes(GPU_RESOURCE));
      for (const flavor of gpuGroup.flavors) {
        const type = flavor.name.slice("gpu-".length);
        totals[type] = (totals[type] ?? 0) + Number(flavor.resources[0].nominalQuota);
      }
    }
    expect(totals).toEqual(expected.gpus);
  });

  it("drops the namespace's GPU ResourceQuota and the PriorityClasses' preemption: Kueue caps and preempts", async () => {
    const objects = objectsOf(await resourcesOf(stack), "training-platform");
    const quota = objects.find((object) => object.kind === "ResourceQuota");
    expect(Object.keys(quota?.spec.hard)).toEqual(["count/jobs.batch"]);
    const priorityClasses = objects.filter((object) => object.kind === "PriorityClass");
    expect(priorityClasses.map((object) => object.preemptionPolicy)).toEqual(["Never", "Never", "Never"]);
  });
});

describe("switching queueing on or off", () => {
  it("replaces a training PriorityClass, deleting it first, when its immutable preemptionPolicy or value changes", async () => {
    const group = only(await resourcesOf("local"), CONFIG_GROUP, "training-platform");
    const transformed = (type: string) =>
      group.transforms.map((transform) => transform({ type, name: "training-platform:training-high", custom: true, props: {}, opts: {} }));
    const [priorityClass] = await Promise.all(transformed("kubernetes:scheduling.k8s.io/v1:PriorityClass"));
    expect(priorityClass?.opts).toMatchObject({ replaceOnChanges: ["value", "preemptionPolicy"], deleteBeforeReplace: true });
    expect(await Promise.all(transformed("kubernetes:apps/v1:Deployment"))).toEqual([undefined]);
  });
});

describe("queueing off", () => {
  const expectAsBeforeKueue = (resources: DeclaredResource[], maxGpus: number) => {
    expect(kueueRelease(resources)).toBeUndefined();
    expect(resources.filter((resource) => resource.name === "kueue" || resource.name === "training-queues")).toEqual([]);
    const objects = everyObject(resources);
    expect(objects.filter((object) => object.apiVersion === KUEUE_API_VERSION)).toEqual([]);
    const quota = objects.find((object) => object.kind === "ResourceQuota");
    expect(quota?.spec.hard[`requests.${GPU_RESOURCE}`]).toBe(maxGpus);
    const preemption = Object.fromEntries(
      objects.filter((object) => object.kind === "PriorityClass").map((object) => [object.metadata.name, object.preemptionPolicy]),
    );
    expect(preemption).toEqual({
      "training-high": "PreemptLowerPriority",
      "training-default": "PreemptLowerPriority",
      "training-low": "Never",
    });
  };

  it("local (off in its stack file): no Kueue, no queue objects, the GPU ResourceQuota from quota.maxGpus", async () => {
    expectAsBeforeKueue(await resourcesOf("local"), 2);
  });

  it("prod-eks with `queueing: false`: the platform as before Kueue", async () => {
    const resources = await declare(
      stackConfig("prod-eks", { queueing: false, quota: { maxGpus: 64, maxJobs: 2000 } }),
      () => platform(loadStackConfig()),
      "prod-eks",
    );
    expectAsBeforeKueue(resources, 64);
  });
});

describe("queueing on an existing cluster (local)", () => {
  const pools = [
    { gpuType: "t4", maxSize: 1, gpusPerNode: 8 },
    { gpuType: "a100", maxSize: 2, gpusPerNode: 8 },
  ];
  const withQueueing = (queueing: Inputs) =>
    declare(stackConfig("local", { queueing, quota: { maxJobs: 100 } }), () => platform(loadStackConfig()), "local");

  it("installs Kueue by default and sizes the flavors from the declared pools and CPU quota", async () => {
    const resources = await withQueueing({ projects: ["1"], gpuPools: pools, cpuQuotaPerProject: { cpu: "64", memory: "256Gi" } });
    expect(kueueRelease(resources)?.inputs.values.controllerManager.replicas).toBe(2);
    const [queue] = objectsOf(resources, "training-queues").filter((object) => object.kind === "ClusterQueue");
    expect(queue?.spec.resourceGroups).toEqual([
      {
        coveredResources: [GPU_RESOURCE],
        flavors: [
          { name: "gpu-t4", resources: [{ name: GPU_RESOURCE, nominalQuota: "8" }] },
          { name: "gpu-a100", resources: [{ name: GPU_RESOURCE, nominalQuota: "16" }] },
        ],
      },
      {
        coveredResources: ["cpu", "memory"],
        flavors: [
          {
            name: "cpu",
            resources: [
              { name: "cpu", nominalQuota: "64" },
              { name: "memory", nominalQuota: "256Gi" },
            ],
          },
        ],
      },
    ]);
  });

  it("takes Kueue's chart from a configured OCI registry or mirror, at the pinned version", async () => {
    const kueueFrom = async (source: Inputs) => {
      const config = stackConfig("local", {
        queueing: { projects: ["1"], gpuPools: pools },
        quota: { maxJobs: 100 },
        helmCharts: { kueue: source },
      });
      return kueueRelease(await declare(config, () => platform(loadStackConfig()), "local"))?.inputs;
    };
    const oci = await kueueFrom({ repo: "oci://registry.example.com/mirror/" });
    expect(oci).toMatchObject({ chart: "oci://registry.example.com/mirror/kueue", version: "0.17.0" });
    expect(oci?.repositoryOpts).toBeUndefined();
    expect(await kueueFrom({ repo: "https://charts.example.com/kueue" })).toMatchObject({
      chart: "kueue",
      version: "0.17.0",
      repositoryOpts: { repo: "https://charts.example.com/kueue" },
    });
  });

  it("with `kueue.install: false` applies only the queues, for the Kueue the cluster runs", async () => {
    const resources = await withQueueing({ projects: ["1", "2"], gpuPools: pools, kueue: { install: false } });
    expect(kueueRelease(resources)).toBeUndefined();
    expect(resources.filter((resource) => resource.name === "kueue")).toEqual([]);
    const queues = only(resources, CONFIG_GROUP, "training-queues");
    expect(queues.dependencies).toEqual([`${CONFIG_GROUP} training-namespace`]);
    expect(named(queues.inputs.objs, "LocalQueue")).toEqual(["project-1", "project-2"]);
  });
});

describe("bad queueing config", () => {
  /** Declares dev-eks with `overrides` against mocks: what loadStackConfig threw, and every resource declared. */
  async function declaredWith(
    overrides: Readonly<Record<string, unknown>>,
  ): Promise<{ problems: readonly string[]; resources: DeclaredResource[] }> {
    let error: unknown;
    const resources = await declare(
      stackConfig("dev-eks", overrides),
      () => {
        try {
          platform(loadStackConfig());
        } catch (thrown) {
          error = thrown;
        }
      },
      "dev-eks",
    );
    expect(error).toBeInstanceOf(StackConfigError);
    return { problems: (error as StackConfigError).problems, resources };
  }

  it("is refused before any resource is declared, every problem named by its key", async () => {
    const { problems, resources } = await declaredWith({
      queueing: { projects: ["1", "1", "Vision"], cpuQuotaPerProject: { cpu: "lots", memory: "1Ti" } },
    });
    for (const expected of [
      'training-platform:queueing.projects[1]: duplicate project "1"',
      "training-platform:queueing.projects[2]: must be a backend projectId",
      "training-platform:queueing.cpuQuotaPerProject.cpu: must be a Kubernetes quantity",
    ]) {
      expect(
        problems.some((problem) => problem.startsWith(expected)),
        `${expected}\nin\n${problems.join("\n")}`,
      ).toBe(true);
    }
    expect(resources).toEqual([]);
  });

  it("that only the whole stack can judge (pools, GPU quota) is refused before any resource too", async () => {
    const { problems, resources } = await declaredWith({ queueing: { projects: ["1"], gpuPools: [] }, quota: { maxGpus: 2 } });
    expect(problems).toEqual([
      "training-platform:queueing.gpuPools: only for the local stack: the queues come from gpuPools here",
      "training-platform:quota.maxGpus: not used while queueing is on: Kueue's quotas (the GPU pools) cap the GPUs; remove it",
    ]);
    expect(resources).toEqual([]);
  });
});
