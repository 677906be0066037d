import { readFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadStackConfig, StackConfigError, validateStackConfig } from "../../infra/config/load-stack-config.ts";
import { SECRET_CONFIG } from "../../infra/config/stack-config.ts";
import {
  DEPLOYED_IMAGES,
  declare,
  deployedStack,
  PROJECT,
  readStackFile,
  stackFiles,
  TEST_SECRETS,
  withTestSecrets,
} from "./pulumi-mocks.ts";

/** Raw config without the namespace, secrets included and set with --secret. */
function rawConfig(stack: string): Record<string, string> {
  const { values } = deployedStack(stackFiles().get(stack) as string);
  return Object.fromEntries(Object.entries(values).map(([key, value]) => [key.slice(`${PROJECT}:`.length), value]));
}

const allSecret = () => true;

function problemsOf(values: Record<string, string>, isSecret: (key: string) => boolean = allSecret): string[] {
  const result = validateStackConfig(values, isSecret);
  return result.success ? [] : result.problems;
}

/** `stack`'s config with one key's JSON value changed by `edit`. */
// biome-ignore lint/suspicious/noExplicitAny: the edits reach into free-form config JSON
function edited(stack: string, key: string, edit: (value: any) => unknown): Record<string, string> {
  const values = rawConfig(stack);
  return { ...values, [key]: JSON.stringify(edit(JSON.parse(values[key] as string))) };
}

describe.each([...stackFiles().keys()])("stack file %s", (stack) => {
  it("is valid once its secrets are set", () => {
    expect(problemsOf(rawConfig(stack))).toEqual([]);
  });

  it("holds no secret in plain text: secret keys are absent or `secure:` ciphertext", () => {
    const config: Record<string, unknown> = parse(readFileSync(stackFiles().get(stack) as string, "utf8")).config;
    for (const key of Object.keys(SECRET_CONFIG)) {
      const value = config[`${PROJECT}:${key}`];
      if (value !== undefined) expect(value, key).toEqual({ secure: expect.any(String) });
    }
  });
});

describe("bad stack configuration is refused, naming the key", () => {
  const cases: [string, Record<string, string>, string][] = [
    [
      "a GPU pool without instance type",
      edited("dev-eks", "gpuPools", ([{ instanceType, ...pool }]) => [pool]),
      "gpuPools[0].instanceType: required",
    ],
    [
      "a new VPC and existing subnets at once",
      edited("dev-eks", "eks", (eks) => ({ ...eks, network: { ...eks.network, subnetIds: { private: ["subnet-0a", "subnet-0b"] } } })),
      "eks.network: vpc and subnetIds are mutually exclusive: set one",
    ],
    ["no network", edited("dev-eks", "eks", ({ network, ...eks }) => eks), "eks.network: required"],
    [
      "a GPU pool with a non-NVIDIA AMI",
      edited("dev-eks", "gpuPools", ([pool]) => [{ ...pool, amiType: "AL2023_x86_64_STANDARD" }]),
      "gpuPools[0].amiType:",
    ],
    [
      "a pool whose minimum is above its maximum",
      edited("dev-eks", "gpuPools", ([pool]) => [{ ...pool, minSize: 3 }]),
      "gpuPools[0].minSize: must not be above maxSize (2)",
    ],
    [
      "an instance type of unknown GPU count, without gpusPerNode",
      edited("dev-eks", "gpuPools", ([pool]) => [{ ...pool, instanceType: "g7.xlarge" }]),
      "gpuPools[0].gpusPerNode: required: g7.xlarge is not a known NVIDIA instance type",
    ],
    [
      "a GPU count the instance type does not have",
      edited("dev-eks", "gpuPools", ([pool]) => [{ ...pool, gpusPerNode: 4 }]),
      "gpuPools[0].gpusPerNode: g4dn.xlarge has 1 GPU(s), not 4",
    ],
    ["two pools with one name", edited("prod-gke", "gpuPools", ([pool]) => [pool, pool]), 'gpuPools[1].name: duplicate name "l4-spot"'],
    [
      "a GKE pool without accelerator",
      edited("prod-gke", "gpuPools", ([{ acceleratorType, ...pool }]) => [pool]),
      "gpuPools[0].acceleratorType: required",
    ],
    ["an unknown key in a pool", edited("prod-gke", "gpuPools", ([pool]) => [{ ...pool, gpus: 2 }]), "gpuPools[0].gpus: unknown key"],
    ["an unknown top-level key", { ...rawConfig("local"), gpuPool: "[]" }, "gpuPool: unknown key"],
    ["GPU pools on the local stack", { ...rawConfig("local"), gpuPools: "[]" }, "gpuPools: unknown key"],
    ["an unknown cloud", { ...rawConfig("local"), cloud: "aks" }, "cloud: must be one of eks, gke, local"],
    ["no context for an existing cluster", { ...rawConfig("local"), kubernetes: "{}" }, "kubernetes.context: required"],
    ["trainers as root", { ...rawConfig("local"), platform: '{"runAsUser":0}' }, "platform.runAsUser: must not be 0"],
    [
      "MLflow outside the cluster",
      { ...rawConfig("local"), platform: '{"mlflowTrackingUri":"https://mlflow.example.com"}' },
      "platform.mlflowTrackingUri: must be http://<service>",
    ],
    ["a cost tag GCP would refuse", { ...rawConfig("prod-gke"), costTags: '{"Team":"ML"}' }, "costTags.Team: tag keys must be lower-case"],
    ["a backend URL that is no URL", { ...rawConfig("local"), backendApiUrl: "backend:8000" }, "backendApiUrl: must be an http(s) URL"],
    [
      "a database password that breaks a postgresql:// URL",
      { ...rawConfig("local"), mlflowDbPassword: "p@ss/word:with-specials" },
      "mlflowDbPassword: must be 16 to 128 letters",
    ],
    [
      "a chart with both a mirror and a local path",
      { ...rawConfig("local"), helmCharts: '{"mlflow":{"repo":"https://charts.example.com","path":"./mlflow"}}' },
      "helmCharts.mlflow: set exactly one of repo (a mirror or OCI registry) and path (a local chart)",
    ],
    ["a chart source of neither kind", { ...rawConfig("local"), helmCharts: '{"mlflow":{}}' }, "helmCharts.mlflow: set exactly one"],
    [
      "a chart mirror that is no http(s) or oci URL",
      { ...rawConfig("local"), helmCharts: '{"mlflow":{"repo":"ftp://charts.example.com"}}' },
      "helmCharts.mlflow.repo: must be an http(s) or oci:// URL",
    ],
    [
      "a source for a chart the stacks do not install",
      { ...rawConfig("local"), helmCharts: '{"grafana":{"path":"./g"}}' },
      "helmCharts.grafana: unknown key",
    ],
    [
      "a StorageClass name Kubernetes would refuse",
      { ...rawConfig("local"), storageClassName: "Fast_SSD" },
      "storageClassName: must be a DNS subdomain",
    ],
    ["a deploy timeout of zero", { ...rawConfig("local"), deployTimeoutMinutes: "0" }, "deployTimeoutMinutes:"],
    ["queueing without projects", { ...rawConfig("local"), queueing: "{}" }, "queueing.projects: required when queueing is enabled"],
    [
      "queueing: true, without projects",
      { ...rawConfig("local"), queueing: "true" },
      "queueing.projects: required when queueing is enabled",
    ],
    [
      "a project twice",
      edited("prod-eks", "queueing", (queueing) => ({ ...queueing, projects: ["1", "2", "1"] })),
      'queueing.projects[2]: duplicate project "1"',
    ],
    [
      "no project",
      edited("prod-eks", "queueing", (queueing) => ({ ...queueing, projects: [] })),
      "queueing.projects: must name at least one",
    ],
    [
      "a project that cannot name a queue",
      edited("prod-eks", "queueing", (queueing) => ({ ...queueing, projects: ["Vision"] })),
      "queueing.projects[0]: must be a backend projectId",
    ],
    [
      "a project too long for its ClusterQueue's name",
      edited("prod-eks", "queueing", (queueing) => ({ ...queueing, projects: ["9".repeat(50)] })),
      `queueing.projects[0]: too long: its ClusterQueue "training-project-${"9".repeat(50)}" would exceed 63 characters`,
    ],
    [
      "the namespace's GPU quota while Kueue's quotas cap GPUs",
      { ...rawConfig("prod-eks"), quota: '{"maxGpus":64}' },
      "quota.maxGpus: not used while queueing is on",
    ],
    [
      "queueing on an existing cluster without its GPU pools",
      { ...rawConfig("local"), queueing: '{"projects":["1"]}', quota: "{}" },
      "queueing.gpuPools: required on the local stack",
    ],
    [
      "queue pools on a cloud stack, whose pools are gpuPools",
      edited("dev-eks", "queueing", (queueing) => ({ ...queueing, gpuPools: [{ gpuType: "t4", maxSize: 1, gpusPerNode: 1 }] })),
      "queueing.gpuPools: only for the local stack",
    ],
    [
      "a local queue pool without its GPUs per node",
      { ...rawConfig("local"), queueing: '{"projects":["1"],"gpuPools":[{"gpuType":"t4","maxSize":1}]}', quota: "{}" },
      "queueing.gpuPools[0].gpusPerNode: required",
    ],
    [
      "a CPU quota that is no quantity",
      edited("dev-eks", "queueing", (queueing) => ({ ...queueing, cpuQuotaPerProject: { cpu: "many", memory: "1Ti" } })),
      "queueing.cpuQuotaPerProject.cpu: must be a Kubernetes quantity",
    ],
    [
      "no Kueue replica",
      edited("dev-eks", "queueing", (queueing) => ({ ...queueing, kueue: { replicas: 0 } })),
      "queueing.kueue.replicas:",
    ],
    [
      "a Kueue version of one's own",
      edited("dev-eks", "queueing", (queueing) => ({ ...queueing, kueue: { version: "0.9.0" } })),
      "queueing.kueue.version: unknown key",
    ],
    ["queueing in the platform settings", { ...rawConfig("local"), platform: '{"queueing":true}' }, "platform.queueing: unknown key"],
    [
      "a cloud stack without the dispatcher's tag",
      edited("dev-eks", "images", ({ dispatcherTag, ...images }) => images),
      "images.dispatcherTag: required for a cloud stack (eks, gke), which never falls back to a default tag",
    ],
    [
      "a cloud stack without the trainers' tag",
      edited("prod-gke", "images", ({ trainerTag, ...images }) => images),
      "images.trainerTag: required for a cloud stack (eks, gke)",
    ],
    [
      "a cloud stack without any images",
      (({ images, ...values }) => values)(rawConfig("prod-eks")),
      "images.registry: required for a cloud stack (eks, gke): the registry CI pushes to",
    ],
    [
      "the floating tag latest",
      edited("dev-eks", "images", (images) => ({ ...images, trainerTag: "latest" })),
      "images.trainerTag: must not be latest",
    ],
    [
      "a tag no registry accepts",
      { ...rawConfig("local"), images: '{"dispatcherTag":"v1 beta"}' },
      "images.dispatcherTag: must be an image tag",
    ],
    [
      "a digest that is no sha256 digest",
      edited("dev-eks", "images", (images) => ({ ...images, dispatcherDigest: "sha256:abc" })),
      "images.dispatcherDigest: must be sha256:<64 lower-case hex digits>",
    ],
    [
      "a trainer digest for a framework the catalogue does not have",
      edited("dev-eks", "images", (images) => ({ ...images, trainerDigests: { pytorch: `sha256:${"0".repeat(64)}` } })),
      "images.trainerDigests.pytorch: unknown key",
    ],
    [
      "a trainer digest that is no sha256 digest",
      edited("dev-eks", "images", (images) => ({ ...images, trainerDigests: { timm: "latest" } })),
      "images.trainerDigests.timm: must be sha256:<64 lower-case hex digits>",
    ],
    [
      "the trainers' registry under platform, away from the dispatcher's",
      { ...rawConfig("local"), platform: '{"registry":"ghcr.io/acme"}' },
      "platform.registry: set under images (images.registry)",
    ],
    [
      "the trainers' tag under platform",
      { ...rawConfig("local"), platform: '{"trainerImageVersion":"v2"}' },
      "platform.trainerImageVersion: set under images (images.trainerTag)",
    ],
    [
      "a pull secret that is no docker config",
      { ...rawConfig("local"), imagePullSecret: "user:password" },
      "imagePullSecret: must be a docker config JSON",
    ],
    [
      "a pull secret for another registry than the images'",
      { ...rawConfig("local"), imagePullSecret: '{"auths":{"registry.example.com":{"auth":"Ym90OnRva2Vu"}}}' },
      "imagePullSecret: holds no credentials for ghcr.io, the registry of images.registry",
    ],
    [
      "a missing secret",
      (({ r2SecretKey, ...values }) => values)(rawConfig("local")),
      "r2SecretKey: required, the secret access key for that object store; set it with `pulumi config set --secret r2SecretKey <value>`",
    ],
  ];

  it.each(cases)("%s", (_, values, expected) => {
    const problems = problemsOf(values);
    expect(
      problems.some((problem) => problem.startsWith(expected)),
      problems.join("\n"),
    ).toBe(true);
  });

  it("refuses a secret set without --secret", () => {
    expect(problemsOf(rawConfig("local"), (key) => key !== "backendToken")).toEqual([
      "backendToken: stored in plain text; set it with `pulumi config set --secret backendToken <value>`",
    ]);
  });

  it("refuses a pull secret set without --secret, and never quotes it", () => {
    const pullSecret = '{"auths":{"registry.example.com":{"auth":"c2VjcmV0LXB1bGwtdG9rZW4="}}}';
    const values = { ...rawConfig("local"), imagePullSecret: pullSecret };
    expect(problemsOf(values, (key) => key !== "imagePullSecret")).toEqual([
      "imagePullSecret: stored in plain text; set it with `pulumi config set --secret imagePullSecret <value>`",
    ]);
    expect(problemsOf(values).join("\n")).not.toContain("c2VjcmV0LXB1bGwtdG9rZW4");
  });

  it("never quotes a secret value in a problem", () => {
    const values = { ...rawConfig("local"), mlflowDbPassword: "short", grafanaAdminPassword: "tiny", dispatcherApiToken: "abc" };
    const problems = problemsOf(values).join("\n");
    expect(problems).toContain("mlflowDbPassword:");
    for (const secret of ["short", "tiny", "abc"]) expect(problems).not.toContain(`"${secret}"`);
    expect(problems).not.toMatch(/\bshort\b|\btiny\b/);
  });
});

describe("queueing", () => {
  const queueingOf = (values: Record<string, string>) => {
    const result = validateStackConfig(values, allSecret);
    if (!result.success) throw new Error(result.problems.join("\n"));
    return result.config.queueing;
  };

  it("is off without the key and with `queueing: false`", () => {
    expect(queueingOf(rawConfig("local"))).toEqual({ enabled: false, kueue: { install: true, replicas: 2 } });
    expect(queueingOf({ ...rawConfig("prod-eks"), queueing: "false" }).enabled).toBe(false);
  });

  it("is on once set: Kueue installed with 2 replicas unless told otherwise", () => {
    expect(queueingOf(rawConfig("prod-gke"))).toEqual({ enabled: true, projects: ["1", "2", "3"], kueue: { install: true, replicas: 2 } });
    expect(queueingOf(rawConfig("dev-eks")).kueue).toEqual({ install: true, replicas: 1 });
  });
});

describe("GPUs per node of an EKS pool", () => {
  const poolOf = (values: Record<string, string>) => {
    const result = validateStackConfig(values, allSecret);
    if (!result.success || result.config.cloud !== "eks") throw new Error(result.success ? "not EKS" : result.problems.join("\n"));
    return result.config.gpuPools[0];
  };

  it("comes from the instance type when it is a known NVIDIA one", () => {
    expect(poolOf(rawConfig("dev-eks"))?.gpusPerNode).toBe(1);
    expect(poolOf(edited("dev-eks", "gpuPools", ([pool]) => [{ ...pool, instanceType: "p4d.24xlarge" }]))?.gpusPerNode).toBe(8);
  });

  it("is taken from the config for an instance type the table does not know", () => {
    expect(poolOf(edited("dev-eks", "gpuPools", ([pool]) => [{ ...pool, instanceType: "g7.xlarge", gpusPerNode: 2 }]))?.gpusPerNode).toBe(
      2,
    );
  });
});

describe("loadStackConfig", () => {
  it("throws before anything is declared, every problem under the project's namespace", async () => {
    const { values, secretKeys } = deployedStack(stackFiles().get("dev-eks") as string);
    const broken = { ...values, [`${PROJECT}:gpuPools`]: JSON.stringify([{ name: "t4", gpuType: "t4", maxSize: 2 }]) };
    let error: unknown;
    const resources = await declare({ values: broken, secretKeys }, () => {
      try {
        loadStackConfig();
      } catch (thrown) {
        error = thrown;
      }
    });
    expect(error).toBeInstanceOf(StackConfigError);
    expect((error as StackConfigError).problems).toEqual(["training-platform:gpuPools[0].instanceType: required"]);
    expect((error as Error).message).toBe("invalid stack configuration:\n  - training-platform:gpuPools[0].instanceType: required");
    expect(resources).toEqual([]);
  });

  it("returns every secret as a Pulumi secret", async () => {
    let secrets: Record<string, pulumi.Output<string>> = {};
    await declare(withTestSecrets(readStackFile(stackFiles().get("local") as string)), () => {
      secrets = loadStackConfig().secrets;
    });
    expect(Object.keys(secrets).sort()).toEqual(Object.keys(SECRET_CONFIG).sort());
    for (const [key, output] of Object.entries(secrets)) {
      expect(await pulumi.isSecret(output), key).toBe(true);
      expect(await new Promise((resolve) => output.apply(resolve)), key).toBe(TEST_SECRETS[key as keyof typeof TEST_SECRETS]);
    }
  });

  it("returns the pull secret, when set, as a Pulumi secret too", async () => {
    const pullSecret = '{"auths":{"ghcr.io":{"auth":"Ym90OnRva2Vu"}}}';
    const { values, secretKeys } = withTestSecrets(readStackFile(stackFiles().get("local") as string));
    let secrets: Record<string, pulumi.Output<string>> = {};
    await declare(
      { values: { ...values, [`${PROJECT}:imagePullSecret`]: pullSecret }, secretKeys: [...secretKeys, `${PROJECT}:imagePullSecret`] },
      () => {
        secrets = loadStackConfig().secrets;
      },
    );
    const output = secrets.imagePullSecret as pulumi.Output<string>;
    expect(await pulumi.isSecret(output)).toBe(true);
    expect(await new Promise((resolve) => output.apply(resolve))).toBe(pullSecret);
  });
});

describe("images", () => {
  it("a cloud stack runs exactly the build the workflow set; the local stack the chart's defaults", () => {
    const images = (stack: string) => {
      const result = validateStackConfig(rawConfig(stack), allSecret);
      return result.success ? result.config.images : result.problems;
    };
    expect(images("dev-eks")).toEqual({ registry: "ghcr.io/myorg", ...DEPLOYED_IMAGES });
    expect(images("local")).toEqual({ registry: "ghcr.io/myorg", dispatcherTag: "v1.0", trainerTag: "v1.0", trainerDigests: {} });
  });

  it("a pull secret is checked against the registry's host, whatever form the docker config names it in", () => {
    const auths = (key: string) => JSON.stringify({ auths: { [key]: { auth: "Ym90OnRva2Vu" } } });
    for (const key of ["ghcr.io", "https://ghcr.io", "https://ghcr.io/v2/"]) {
      expect(problemsOf({ ...rawConfig("local"), imagePullSecret: auths(key) }), key).toEqual([]);
    }
    const dockerHub = { ...rawConfig("local"), images: '{"registry":"docker.io/acme"}' };
    expect(problemsOf({ ...dockerHub, imagePullSecret: auths("https://index.docker.io/v1/") })).toEqual([]);
    const local = { ...rawConfig("local"), images: '{"registry":"registry.example.com:5000/ml"}' };
    expect(problemsOf({ ...local, imagePullSecret: auths("registry.example.com:5000") })).toEqual([]);
    expect(problemsOf({ ...local, imagePullSecret: auths("registry.example.com") })).toEqual([
      "imagePullSecret: holds no credentials for registry.example.com:5000, the registry of images.registry",
    ]);
  });
});

describe("chart sources, storage class and timeouts", () => {
  it("accept a mirror, an OCI registry and a local chart, each for its own chart", () => {
    const result = validateStackConfig(
      {
        ...rawConfig("local"),
        helmCharts: JSON.stringify({
          mlflow: { path: "../charts/mlflow-1.12.0.tgz" },
          kubePrometheusStack: { repo: "oci://registry.example.com/charts" },
          dcgmExporter: { repo: "https://mirror.example.com/nvidia" },
        }),
        storageClassName: "local-path",
        deployTimeoutMinutes: "20",
      },
      allSecret,
    );
    expect(result.success && result.config).toMatchObject({
      helmCharts: {
        mlflow: { path: "../charts/mlflow-1.12.0.tgz" },
        kubePrometheusStack: { repo: "oci://registry.example.com/charts" },
        dcgmExporter: { repo: "https://mirror.example.com/nvidia" },
      },
      storageClassName: "local-path",
      deployTimeoutMinutes: 20,
    });
  });

  it("default to the public repositories, the cluster's default StorageClass and 10 minutes", () => {
    const result = validateStackConfig(rawConfig("local"), allSecret);
    expect(result.success && result.config).toMatchObject({ helmCharts: {}, deployTimeoutMinutes: 10 });
    expect(result.success && result.config.storageClassName).toBeUndefined();
  });
});
