/**
 * Every stack file in stacks/, declared against mocks: which resources each
 * creates and their key properties.
 */
import { isAbsolute, resolve } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { KUEUE_API_VERSION } from "../../charts-ts/kueue-contract.ts";
import type { GpuPoolQuota } from "../../charts-ts/platform/training-queues.ts";
import { GPU_NODE_LABELS, GPU_RESOURCE } from "../../charts-ts/training-job.ts";
import { DISPATCHER_SCRAPE_JOB } from "../../dispatcher/metric-names.ts";
import { loadStackConfig } from "../../infra/config/load-stack-config.ts";
import type { PlainStackConfig } from "../../infra/config/stack-config.ts";
import { gpuNodeCapacity } from "../../infra/gpu-nodes.ts";
import { HELM_CHARTS } from "../../infra/helm-charts.ts";
import { TRAINING_ALERT_GROUPS } from "../../infra/monitoring/alert-rules.ts";
import { renderPlatformChart } from "../../infra/platform/platform-manifests.ts";
import { platform } from "../../infra/program.ts";
import { SECRET_CHECKSUM_ANNOTATION } from "../../infra/secret-checksum.ts";
import {
  DEPLOYED_IMAGES,
  type DeclaredResource,
  declare,
  deployedStack,
  type Inputs,
  isSecretValue,
  readStackFile,
  stackFiles,
  TEST_SECRETS,
  unwrapSecrets,
  validatedStackConfig,
  withTestSecrets,
} from "./pulumi-mocks.ts";

const STACKS = stackFiles();
const declared = new Map<string, Promise<DeclaredResource[]>>();

/** The stack's resources; declared once per stack (tests in a file run one after another). */
function resourcesOf(stack: string): Promise<DeclaredResource[]> {
  const file = STACKS.get(stack);
  if (!file) throw new Error(`no stacks/Pulumi.${stack}.yaml`);
  let resources = declared.get(stack);
  if (!resources) {
    resources = declare(deployedStack(file), () => platform(loadStackConfig()), stack);
    declared.set(stack, resources);
  }
  return resources;
}

const ofType = (resources: DeclaredResource[], type: string) => resources.filter((resource) => resource.type === type);

function one(resources: DeclaredResource[], type: string, name: string): DeclaredResource {
  const found = resources.filter((resource) => resource.type === type && resource.name === name);
  if (found.length !== 1) throw new Error(`expected one ${type} named ${name}, found ${found.length}`);
  return found[0] as DeclaredResource;
}

/** Inputs with secret wrappers removed. */
const plain = (resource: DeclaredResource): Inputs => unwrapSecrets(resource.inputs) as Inputs;

/** Where a test secret appears outside a Pulumi secret: `<type> <name> <path>`. */
function plaintextSecrets(value: unknown, where: string): string[] {
  if (isSecretValue(value)) return [];
  if (typeof value === "string") {
    return Object.entries(TEST_SECRETS)
      .filter(([, secret]) => value.includes(secret))
      .map(([key]) => `${where} holds ${key} in plain text`);
  }
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).flatMap(([key, inner]) => plaintextSecrets(inner, `${where}.${key}`));
  }
  return [];
}

function release(resources: DeclaredResource[], chart: keyof typeof HELM_CHARTS): Inputs {
  // Releases are named after their chart; `chart` itself is a full reference for OCI charts.
  const found = ofType(resources, "kubernetes:helm.sh/v3:Release").filter((resource) => resource.inputs.name === HELM_CHARTS[chart].chart);
  expect(found, `one ${chart} release`).toHaveLength(1);
  return plain(found[0] as DeclaredResource);
}

/** The pools a stack's queues should hold quota for: EKS maxSize, GKE maxNodes (a total across zones), local as declared. */
function expectedQueuePools(config: PlainStackConfig): GpuPoolQuota[] {
  if (config.cloud === "eks")
    return config.gpuPools.map((pool) => ({ gpuType: pool.gpuType, maxSize: pool.maxSize, gpusPerNode: pool.gpusPerNode }));
  if (config.cloud === "gke")
    return config.gpuPools.map((pool) => ({ gpuType: pool.gpuType, maxSize: pool.maxNodes, gpusPerNode: pool.gpusPerNode }));
  return config.queueing.gpuPools ?? [];
}

const GPU_LABELS = (gpuType: string) => ({ accelerator: "nvidia-gpu", "gpu-type": gpuType, "nvidia.com/gpu.present": "true" });
const GPU_TAINT = { key: "nvidia.com/gpu", value: "true", effect: "NO_SCHEDULE" };

it("finds the four stacks", () => {
  expect([...STACKS.keys()].sort()).toEqual(["dev-eks", "local", "prod-eks", "prod-gke"]);
});

it("labels GPU nodes with the keys the TrainingJob selects", () => {
  expect(GPU_LABELS("t4")).toMatchObject({ accelerator: GPU_NODE_LABELS.accelerator, [GPU_NODE_LABELS.gpuType]: "t4" });
  expect(GPU_TAINT.key).toBe(GPU_RESOURCE);
});

describe.each([...STACKS.keys()])("every stack: %s", (stack) => {
  it("passes no secret value as plain text in any resource input", async () => {
    const leaks = (await resourcesOf(stack)).flatMap((resource) => plaintextSecrets(resource.inputs, `${resource.type} ${resource.name}`));
    expect(leaks).toEqual([]);
  });

  it("puts no secret, even wrapped, into Helm values or ConfigMaps, which are stored readable", async () => {
    const resources = await resourcesOf(stack);
    const readable = resources.filter(
      (resource) => resource.type === "kubernetes:helm.sh/v3:Release" || resource.type === "kubernetes:core/v1:ConfigMap",
    );
    const leaks = readable.flatMap((resource) => {
      const text = JSON.stringify(unwrapSecrets(resource.inputs));
      return Object.entries(TEST_SECRETS)
        .filter(([, secret]) => text.includes(secret))
        .map(([key]) => `${resource.type} ${resource.name} holds ${key}`);
    });
    expect(leaks).toEqual([]);
  });

  it("creates the Secrets and ConfigMap training Jobs and the dispatcher read, secrets as Pulumi secrets", async () => {
    const resources = await resourcesOf(stack);
    const objectStore = one(resources, "kubernetes:core/v1:Secret", "training-object-store");
    expect(objectStore.inputs.metadata).toEqual({ name: "r2-credentials", namespace: "training" });
    expect(isSecretValue(objectStore.inputs.stringData)).toBe(true);
    expect(plain(objectStore).stringData).toEqual({
      endpoint: TEST_SECRETS.r2Endpoint,
      "access-key": TEST_SECRETS.r2AccessKey,
      "secret-key": TEST_SECRETS.r2SecretKey,
    });
    const tokens = one(resources, "kubernetes:core/v1:Secret", "training-dispatcher-tokens");
    expect(tokens.inputs.metadata).toEqual({ name: "training-dispatcher", namespace: "training" });
    expect(isSecretValue(tokens.inputs.stringData)).toBe(true);
    expect(plain(tokens).stringData).toEqual({ "api-token": TEST_SECRETS.dispatcherApiToken, "backend-token": TEST_SECRETS.backendToken });
    const backend = one(resources, "kubernetes:core/v1:ConfigMap", "training-backend-config");
    expect(backend.inputs.metadata).toEqual({ name: "backend-config", namespace: "training" });
    expect(Object.keys(backend.inputs.data)).toEqual(["api-url"]);
  });

  it("tells the dispatcher the GPUs of the largest node of each declared pool type", async () => {
    // From the stack files' gpuPools: g4dn.xlarge (1 T4); g5.2xlarge (1 A10G) and p4d.24xlarge (8 A100);
    // g2-standard-8 and a2-highgpu-1g, one GPU each by default; an existing cluster declares none.
    const expected: Record<string, string | undefined> = {
      "dev-eks": "t4=1",
      "prod-eks": "a100=8,a10g=1",
      "prod-gke": "a100=1,l4=1",
      local: undefined,
    };
    const objects = one(await resourcesOf(stack), "kubernetes:yaml/v2:ConfigGroup", "training-platform").inputs.objs;
    const deployment = objects.find((object: Inputs) => object.kind === "Deployment");
    const env = deployment.spec.template.spec.containers[0].env.find((entry: Inputs) => entry.name === "GPU_NODE_CAPACITY");
    expect(stack in expected).toBe(true);
    expect(env?.value).toBe(expected[stack]);
  });

  it("runs the images it names: a cloud stack the commit the workflow set (each image by digest), local the chart's defaults", async () => {
    const deployment = one(await resourcesOf(stack), "kubernetes:yaml/v2:ConfigGroup", "training-platform").inputs.objs.find(
      (object: Inputs) => object.kind === "Deployment",
    );
    const [container] = deployment.spec.template.spec.containers;
    const env = Object.fromEntries(container.env.map((entry: Inputs) => [entry.name, entry.value]));
    const { dispatcherTag, trainerTag, dispatcherDigest, trainerDigests } = DEPLOYED_IMAGES;
    const [image, trainers, digests] =
      stack === "local"
        ? ["ghcr.io/myorg/training-dispatcher:v1.0", "v1.0", undefined]
        : [
            `ghcr.io/myorg/training-dispatcher:${dispatcherTag}@${dispatcherDigest}`,
            trainerTag,
            `timm=${trainerDigests.timm},transformers=${trainerDigests.transformers},ultralytics=${trainerDigests.ultralytics}`,
          ];
    expect(container.image).toBe(image);
    expect(env).toMatchObject({ TRAINER_REGISTRY: "ghcr.io/myorg", TRAINER_IMAGE_VERSION: trainers });
    expect(env.TRAINER_IMAGE_DIGESTS).toBe(digests);
    expect(env.TRAINER_IMAGE_PULL_SECRET).toBeUndefined();
    expect(deployment.spec.template.spec.imagePullSecrets).toBeUndefined();
  });

  it("applies the platform chart as cdk8s renders it: the namespace first, then everything else", async () => {
    const resources = await resourcesOf(stack);
    const namespace = one(resources, "kubernetes:yaml/v2:ConfigGroup", "training-namespace").inputs.objs;
    const rest = structuredClone(one(resources, "kubernetes:yaml/v2:ConfigGroup", "training-platform").inputs.objs);
    const queueGroups = resources.filter((resource) => resource.name === "training-queues");
    expect(namespace.map((object: Inputs) => `${object.kind}/${object.metadata.name}`)).toEqual(["Namespace/training"]);
    const kinds = new Set(rest.map((object: Inputs) => object.kind));
    for (const kind of [
      "Deployment",
      "Service",
      "Role",
      "RoleBinding",
      "ServiceAccount",
      "ResourceQuota",
      "PriorityClass",
      "NetworkPolicy",
    ]) {
      expect(kinds, kind).toContain(kind);
    }
    const config = validatedStackConfig(STACKS.get(stack) as string);
    const rendered = renderPlatformChart({
      platform: {
        ...config.platform,
        registry: config.images.registry,
        trainerImageVersion: config.images.trainerTag,
        trainerImageDigests: config.images.trainerDigests,
        queueing: config.queueing.enabled,
      },
      dispatcherImage: {
        tag: config.images.dispatcherTag,
        ...(config.images.dispatcherDigest !== undefined && { digest: config.images.dispatcherDigest }),
      },
      ...(config.queueing.enabled && { queues: { gpuPools: expectedQueuePools(config), projects: config.queueing.projects ?? [] } }),
      quota: config.quota,
      dispatcherReplicas: config.dispatcherReplicas,
      ...(config.cloud !== "local" && { gpuNodeCapacity: gpuNodeCapacity(config.gpuPools) }),
      mlflow: { namespace: "mlflow", podLabels: { "app.kubernetes.io/name": "mlflow" }, port: 5000 },
    });
    // The one addition: the tokens' checksum on the dispatcher's pod template (checked below).
    const deployment = rest.find((object: Inputs) => object.kind === "Deployment");
    expect(Object.keys(deployment.spec.template.metadata.annotations)).toEqual([SECRET_CHECKSUM_ANNOTATION]);
    delete deployment.spec.template.metadata.annotations;
    // Kueue's objects are a group of their own, applied once Kueue is (see "queueing" below).
    const queues = queueGroups.flatMap((group) => group.inputs.objs);
    const isKueueObject = (object: Inputs) => object.apiVersion === KUEUE_API_VERSION;
    const asRendered = JSON.parse(JSON.stringify(rendered));
    expect([...namespace, ...rest]).toEqual(asRendered.filter((object: Inputs) => !isKueueObject(object)));
    expect(queues).toEqual(asRendered.filter(isKueueObject));
    expect(queueGroups).toHaveLength(config.queueing.enabled ? 1 : 0);
  });

  it("updates Secrets and ConfigMaps in place and rolls every workload that reads a rotated secret", async () => {
    const before = await resourcesOf(stack);
    const rotated = await declare(
      deployedStack(STACKS.get(stack) as string, {
        dispatcherApiToken: "rotated-dispatcher-api-token-0123456789abcdef",
        mlflowDbPassword: "rotatedMlflowDbPassword0",
        grafanaAdminPassword: "rotated-grafana-admin-password",
      }),
      () => platform(loadStackConfig()),
      stack,
    );
    const providers = ofType(before, "pulumi:providers:kubernetes");
    expect(providers).toHaveLength(1);
    expect(providers[0]?.inputs).toMatchObject({ enableSecretMutable: "true", enableConfigMapMutable: "true" });
    const dispatcherChecksum = (resources: DeclaredResource[]) =>
      one(resources, "kubernetes:yaml/v2:ConfigGroup", "training-platform").inputs.objs.find(
        (object: Inputs) => object.kind === "Deployment",
      ).spec.template.metadata.annotations[SECRET_CHECKSUM_ANNOTATION];
    const mlflowChecksum = (resources: DeclaredResource[]) =>
      release(resources, "mlflow").values.podAnnotations[SECRET_CHECKSUM_ANNOTATION];
    const grafanaChecksum = (resources: DeclaredResource[]) =>
      release(resources, "kubePrometheusStack").values.grafana.podAnnotations[SECRET_CHECKSUM_ANNOTATION];
    for (const checksum of [dispatcherChecksum, mlflowChecksum, grafanaChecksum]) {
      expect(checksum(before)).toMatch(/^[0-9a-f]{64}$/);
      expect(checksum(rotated)).toMatch(/^[0-9a-f]{64}$/);
      expect(checksum(rotated)).not.toBe(checksum(before));
    }
  });

  it("pins every Helm chart to the version in HELM_CHARTS", async () => {
    const releases = ofType(await resourcesOf(stack), "kubernetes:helm.sh/v3:Release");
    expect(releases.length).toBeGreaterThan(0);
    for (const { inputs } of releases) {
      const pin = Object.values(HELM_CHARTS).find((candidate) => candidate.chart === inputs.name);
      expect(pin, inputs.name).toBeDefined();
      expect(inputs.version).toBe(pin?.version);
      expect(inputs.version).toMatch(/^\d+\.\d+\.\d+$/);
      if (pin?.repo.startsWith("oci://")) {
        expect(inputs.chart).toBe(`${pin.repo}/${pin.chart}`);
        expect(inputs.repositoryOpts).toBeUndefined();
      } else {
        expect(inputs.chart).toBe(inputs.name);
        expect(inputs.repositoryOpts).toEqual({ repo: pin?.repo });
      }
    }
  });

  it("sends every Kubernetes resource through the stack's own provider", async () => {
    const resources = await resourcesOf(stack);
    const kubernetes = resources.filter((resource) => resource.type.startsWith("kubernetes:"));
    expect(kubernetes.every((resource) => resource.provider.includes("::pulumi:providers:kubernetes::"))).toBe(true);
  });

  it("scrapes the dispatcher's Service and applies the alert rules and the dashboard", async () => {
    const resources = await resourcesOf(stack);
    const monitor = plain(one(resources, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor", "monitoring-dispatcher"));
    expect(monitor.metadata).toEqual({ name: "training-dispatcher", namespace: "training" });
    expect(monitor.spec.selector.matchLabels).toMatchObject({ "app.kubernetes.io/name": "training-dispatcher" });
    expect(monitor.spec.endpoints).toEqual([
      {
        port: "http",
        path: "/metrics",
        interval: "30s",
        relabelings: [{ action: "replace", targetLabel: "job", replacement: DISPATCHER_SCRAPE_JOB }],
      },
    ]);
    const rules = plain(one(resources, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "monitoring-training-alerts"));
    expect(rules.spec.groups).toEqual(TRAINING_ALERT_GROUPS);
    const dashboard = plain(one(resources, "kubernetes:core/v1:ConfigMap", "monitoring-training-dashboard"));
    expect(dashboard.metadata.labels).toEqual({ grafana_dashboard: "1" });
    expect(JSON.parse(dashboard.data["training-jobs.json"]).uid).toBe("training-jobs");
    const stackValues = release(resources, "kubePrometheusStack").values;
    expect(stackValues.prometheus.prometheusSpec).toMatchObject({
      serviceMonitorSelectorNilUsesHelmValues: false,
      ruleSelectorNilUsesHelmValues: false,
    });
    expect(stackValues.grafana.admin).toEqual({ existingSecret: "grafana-admin", userKey: "admin-user", passwordKey: "admin-password" });
    expect(isSecretValue(one(resources, "kubernetes:core/v1:Secret", "monitoring-grafana-admin").inputs.stringData)).toBe(true);
  });

  it("deploys MLflow where the tracking URI points, its password only as a Secret reference", async () => {
    const resources = await resourcesOf(stack);
    const { namespace, values } = release(resources, "mlflow");
    expect(namespace).toBe("mlflow");
    expect(values.fullnameOverride).toBe("mlflow-service");
    expect(values.service.port).toBe(5000);
    expect(values.serviceAccount).toMatchObject({ create: true, name: "mlflow" });
    expect(values.backendStore.postgres).toMatchObject({ enabled: true, database: "mlflow" });
    expect(values.backendStore.postgres.password).toBeUndefined();
    expect(values.backendStore.existingDatabaseSecret).toEqual({
      name: "mlflow-database",
      usernameKey: "username",
      passwordKey: "password",
    });
    expect(values.artifactRoot.proxiedArtifactStorage).toBe(true);
    const database = one(resources, "kubernetes:core/v1:Secret", "mlflow-database");
    expect(isSecretValue(database.inputs.stringData)).toBe(true);
    expect(plain(database).stringData).toEqual({ username: "mlflow", password: TEST_SECRETS.mlflowDbPassword });
  });

  it("runs the DCGM exporter on GPU nodes only, tolerating their taint", async () => {
    const { values, namespace } = release(await resourcesOf(stack), "dcgmExporter");
    expect(namespace).toBe("monitoring");
    expectGpuPlacement(values);
    expect(values.serviceMonitor.enabled).toBe(true);
  });
});

/** Affinity that admits exactly our GPU nodes and the toleration for their taint. */
function expectGpuPlacement(values: Inputs) {
  const terms = values.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
  expect(terms).toEqual([
    { matchExpressions: [{ key: "accelerator", operator: "In", values: ["nvidia-gpu"] }] },
    { matchExpressions: [{ key: "nvidia.com/gpu.present", operator: "In", values: ["true"] }] },
  ]);
  expect(values.tolerations).toEqual([{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }]);
}

describe.each(["dev-eks", "prod-eks"])("EKS: %s", (stack) => {
  it("tags every AWS resource through the provider's default tags, and instances through launch templates", async () => {
    const resources = await resourcesOf(stack);
    const [provider] = ofType(resources, "pulumi:providers:aws");
    const tags = JSON.parse(provider?.inputs.defaultTags).tags;
    expect(tags).toMatchObject({ project: "training-platform", stack, "managed-by": "pulumi", team: "ml-platform" });
    const aws = resources.filter((resource) => resource.type.startsWith("aws:"));
    expect(aws.every((resource) => resource.provider.includes("::pulumi:providers:aws::aws::"))).toBe(true);
    for (const template of ofType(resources, "aws:ec2/launchTemplate:LaunchTemplate")) {
      expect(template.inputs.tagSpecifications.map((spec: Inputs) => spec.resourceType)).toEqual(["instance", "volume"]);
      for (const spec of template.inputs.tagSpecifications) expect(spec.tags).toMatchObject(tags);
      expect(template.inputs.metadataOptions).toMatchObject({ httpTokens: "required", httpPutResponseHopLimit: 1 });
    }
  });

  it("makes GPU node groups NVIDIA, labelled, tainted and able to scale to zero; the system group plain", async () => {
    const resources = await resourcesOf(stack);
    const groups = ofType(resources, "aws:eks/nodeGroup:NodeGroup");
    const system = one(resources, "aws:eks/nodeGroup:NodeGroup", "system").inputs;
    expect(system).toMatchObject({ amiType: "AL2023_x86_64_STANDARD", capacityType: "ON_DEMAND" });
    expect(system.taints).toBeUndefined();
    const config = validatedStackConfig(STACKS.get(stack) as string);
    const pools = config.cloud === "eks" ? config.gpuPools : [];
    const gpuGroups = groups.filter((group) => group.name.startsWith("gpu-"));
    expect(gpuGroups.map((group) => group.name)).toEqual(pools.map((pool) => `gpu-${pool.name}`));
    for (const { inputs, name } of gpuGroups) {
      expect(inputs.amiType, name).toBe("AL2023_x86_64_NVIDIA");
      expect(inputs.labels, name).toEqual(GPU_LABELS(inputs.labels["gpu-type"]));
      expect(inputs.taints, name).toEqual([GPU_TAINT]);
      expect(inputs.scalingConfig, name).toMatchObject({ minSize: 0, desiredSize: 0 });
      const pool = pools.find((candidate) => `gpu-${candidate.name}` === name);
      expect(inputs.capacityType, name).toBe(pool?.spot ? "SPOT" : "ON_DEMAND");
      expect(inputs.instanceTypes, name).toEqual([pool?.instanceType]);
    }
  });

  it("installs the NVIDIA device plugin and the cluster autoscaler, which scale-to-zero needs", async () => {
    const resources = await resourcesOf(stack);
    const plugin = release(resources, "nvidiaDevicePlugin");
    expect(plugin.namespace).toBe("kube-system");
    expect(plugin.values.priorityClassName).toBe("system-node-critical");
    expectGpuPlacement(plugin.values);
    const autoscaler = release(resources, "clusterAutoscaler").values;
    expect(autoscaler.autoDiscovery.clusterName).toMatch(/^training-/);
    expect(autoscaler.image.tag).toBe("v1.32.0");
    expect(autoscaler.rbac.serviceAccount.annotations["eks.amazonaws.com/role-arn"]).toMatch(/^arn:aws:iam::/);
  });

  it("enforces NetworkPolicy, encrypts Secrets with KMS and gives Prometheus a default StorageClass", async () => {
    const resources = await resourcesOf(stack);
    const cluster = one(resources, "aws:eks/cluster:Cluster", "cluster").inputs;
    expect(cluster.encryptionConfig.resources).toEqual(["secrets"]);
    expect(cluster.accessConfig.authenticationMode).toBe("API");
    const cni = one(resources, "aws:eks/addon:Addon", "addons-vpc-cni").inputs;
    expect(JSON.parse(cni.configurationValues)).toEqual({ enableNetworkPolicy: "true" });
    expect(one(resources, "aws:eks/addon:Addon", "addons-ebs-csi").inputs.addonName).toBe("aws-ebs-csi-driver");
    const storageClass = one(resources, "kubernetes:storage.k8s.io/v1:StorageClass", "addons-gp3").inputs;
    expect(storageClass.metadata.annotations["storageclass.kubernetes.io/is-default-class"]).toBe("true");
  });

  it("gives MLflow a private RDS, a private S3 bucket and an IRSA role instead of keys", async () => {
    const resources = await resourcesOf(stack);
    const database = one(resources, "aws:rds/instance:Instance", "mlflow");
    expect(database.inputs).toMatchObject({
      engine: "postgres",
      publiclyAccessible: false,
      storageEncrypted: true,
      username: "mlflow",
      dbName: "mlflow",
    });
    expect(isSecretValue(database.inputs.password)).toBe(true);
    expect(one(resources, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "mlflow").inputs).toMatchObject({
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    const trust = JSON.parse(one(resources, "aws:iam/role:Role", "mlflow-artifacts").inputs.assumeRolePolicy);
    expect(trust.Statement[0].Condition.StringEquals).toEqual({
      "oidc.eks.us-east-1.amazonaws.com/id/ABCDEF:sub": "system:serviceaccount:mlflow:mlflow",
      "oidc.eks.us-east-1.amazonaws.com/id/ABCDEF:aud": "sts.amazonaws.com",
    });
    const { values } = release(resources, "mlflow");
    expect(values.serviceAccount.annotations).toEqual({ "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/mlflow-artifacts" });
    expect(values.artifactRoot.s3).toMatchObject({ enabled: true, bucket: "mlflow-0123abc" });
  });

  it("hands Kubernetes a kubeconfig that is a secret", async () => {
    const [provider] = ofType(await resourcesOf(stack), "pulumi:providers:kubernetes");
    expect(isSecretValue(provider?.inputs.kubeconfig)).toBe(true);
  });
});

describe("EKS networks", () => {
  it("dev-eks creates a VPC with a private and a public subnet per zone", async () => {
    const resources = await resourcesOf("dev-eks");
    expect(one(resources, "aws:ec2/vpc:Vpc", "network").inputs.cidrBlock).toBe("10.40.0.0/16");
    const subnets = ofType(resources, "aws:ec2/subnet:Subnet").map((subnet) => [subnet.name, subnet.inputs.cidrBlock]);
    expect(subnets.sort()).toEqual([
      ["network-private-us-east-1a", "10.40.0.0/19"],
      ["network-private-us-east-1b", "10.40.32.0/19"],
      ["network-public-us-east-1a", "10.40.128.0/22"],
      ["network-public-us-east-1b", "10.40.132.0/22"],
    ]);
    expect(ofType(resources, "aws:ec2/natGateway:NatGateway")).toHaveLength(1);
  });

  it("prod-eks uses the existing subnets and creates no network", async () => {
    const resources = await resourcesOf("prod-eks");
    expect(ofType(resources, "aws:ec2/vpc:Vpc")).toEqual([]);
    expect(ofType(resources, "aws:ec2/subnet:Subnet")).toEqual([]);
    const cluster = one(resources, "aws:eks/cluster:Cluster", "cluster").inputs;
    expect(cluster.vpcConfig.subnetIds).toHaveLength(6);
    expect(one(resources, "aws:eks/nodeGroup:NodeGroup", "gpu-a100").inputs.subnetIds).toEqual([
      "subnet-0a1b2c3d4e5f60001",
      "subnet-0a1b2c3d4e5f60002",
      "subnet-0a1b2c3d4e5f60003",
    ]);
  });

  it("prod-eks gives the configured roles cluster-admin through access entries", async () => {
    const resources = await resourcesOf("prod-eks");
    expect(ofType(resources, "aws:eks/accessEntry:AccessEntry").map((entry) => entry.inputs.principalArn)).toEqual([
      "arn:aws:iam::123456789012:role/platform-admins",
      "arn:aws:iam::123456789012:role/ci-deploy",
    ]);
    for (const association of ofType(resources, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation")) {
      expect(association.inputs).toMatchObject({
        policyArn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
        accessScope: { type: "cluster" },
      });
    }
  });

  it("dev stacks may be destroyed; prod stacks protect the database", async () => {
    expect(one(await resourcesOf("dev-eks"), "aws:rds/instance:Instance", "mlflow").inputs).toMatchObject({
      deletionProtection: false,
      skipFinalSnapshot: true,
    });
    expect(one(await resourcesOf("prod-eks"), "aws:rds/instance:Instance", "mlflow").inputs).toMatchObject({
      deletionProtection: true,
      skipFinalSnapshot: false,
      finalSnapshotIdentifier: "mlflow-final",
    });
  });
});

describe("GKE: prod-gke", () => {
  it("labels every GCP resource through the provider and VMs and the database through their own labels", async () => {
    const resources = await resourcesOf("prod-gke");
    const [provider] = ofType(resources, "pulumi:providers:gcp");
    const labels = JSON.parse(provider?.inputs.defaultLabels);
    expect(labels).toMatchObject({ project: "training-platform", stack: "prod-gke", "managed-by": "pulumi", "cost-center": "ml-training" });
    const gcp = resources.filter((resource) => resource.type.startsWith("gcp:"));
    expect(gcp.every((resource) => resource.provider.includes("::pulumi:providers:gcp::gcp::"))).toBe(true);
    for (const pool of ofType(resources, "gcp:container/nodePool:NodePool")) expect(pool.inputs.nodeConfig.resourceLabels).toEqual(labels);
    expect(one(resources, "gcp:sql/databaseInstance:DatabaseInstance", "mlflow").inputs.settings.userLabels).toEqual(labels);
  });

  it("gives GPU pools accelerators with a managed driver, the GPU labels and taint, spot and scale to zero", async () => {
    const resources = await resourcesOf("prod-gke");
    const l4 = one(resources, "gcp:container/nodePool:NodePool", "gpu-l4-spot").inputs;
    expect(l4.nodeConfig.guestAccelerators).toEqual([
      { type: "nvidia-l4", count: 1, gpuDriverInstallationConfig: { gpuDriverVersion: "LATEST" } },
    ]);
    expect(l4.nodeConfig.labels).toEqual(GPU_LABELS("l4"));
    expect(l4.nodeConfig.taints).toEqual([GPU_TAINT]);
    expect(l4.nodeConfig.spot).toBe(true);
    expect(l4.nodeConfig.workloadMetadataConfig).toEqual({ mode: "GKE_METADATA" });
    expect(l4.autoscaling).toMatchObject({ totalMinNodeCount: 0, totalMaxNodeCount: 16 });
    expect(l4.nodeLocations).toEqual(["us-central1-a", "us-central1-b", "us-central1-c"]);
    const a100 = one(resources, "gcp:container/nodePool:NodePool", "gpu-a100").inputs;
    expect(a100.nodeConfig).toMatchObject({ spot: false, diskSizeGb: 500, labels: GPU_LABELS("a100"), taints: [GPU_TAINT] });
    const system = one(resources, "gcp:container/nodePool:NodePool", "system").inputs;
    expect(system.nodeConfig.taints).toBeUndefined();
    expect(system.nodeConfig.guestAccelerators).toBeUndefined();
  });

  it("runs Workload Identity and Dataplane V2, and binds MLflow's ServiceAccount to a Google one", async () => {
    const resources = await resourcesOf("prod-gke");
    const cluster = one(resources, "gcp:container/cluster:Cluster", "cluster").inputs;
    expect(cluster).toMatchObject({
      workloadIdentityConfig: { workloadPool: "ml-platform-prod.svc.id.goog" },
      datapathProvider: "ADVANCED_DATAPATH",
      removeDefaultNodePool: true,
      deletionProtection: true,
    });
    expect(one(resources, "gcp:serviceaccount/iAMMember:IAMMember", "mlflow-artifacts").inputs).toMatchObject({
      role: "roles/iam.workloadIdentityUser",
      member: "serviceAccount:ml-platform-prod.svc.id.goog[mlflow/mlflow]",
    });
    const { values } = release(resources, "mlflow");
    expect(values.serviceAccount.annotations).toEqual({
      "iam.gke.io/gcp-service-account": "training-prod-mlflow@ml-platform-prod.iam.gserviceaccount.com",
    });
    expect(values.artifactRoot.gcs).toMatchObject({ enabled: true, bucket: "mlflow-0123abc" });
  });

  it("keeps Cloud SQL and the bucket private", async () => {
    const resources = await resourcesOf("prod-gke");
    const sql = one(resources, "gcp:sql/databaseInstance:DatabaseInstance", "mlflow").inputs;
    expect(sql.settings.ipConfiguration).toMatchObject({ ipv4Enabled: false, sslMode: "ENCRYPTED_ONLY" });
    expect(isSecretValue(one(resources, "gcp:sql/user:User", "mlflow").inputs.password)).toBe(true);
    expect(one(resources, "gcp:storage/bucket:Bucket", "mlflow").inputs).toMatchObject({
      publicAccessPrevention: "enforced",
      uniformBucketLevelAccess: true,
      forceDestroy: false,
    });
  });

  it("leaves the device plugin to GKE and points DCGM at GKE's driver directory", async () => {
    const resources = await resourcesOf("prod-gke");
    expect(ofType(resources, "kubernetes:helm.sh/v3:Release").map((resource) => resource.inputs.chart)).not.toContain(
      "nvidia-device-plugin",
    );
    const { values } = release(resources, "dcgmExporter");
    expect(values.extraHostVolumes).toEqual([{ name: "nvidia-driver", hostPath: "/home/kubernetes/bin/nvidia" }]);
  });
});

describe("local", () => {
  it("declares no cloud resources and reaches the cluster through the configured context", async () => {
    const resources = await resourcesOf("local");
    expect(resources.filter((resource) => /^(aws|gcp):/.test(resource.type))).toEqual([]);
    const providers = ofType(resources, "pulumi:providers:kubernetes");
    expect(providers.map((provider) => provider.inputs.context)).toEqual(["kind-training"]);
  });

  it("runs MLflow's Postgres in the cluster as non-root and keeps artifacts in the object store", async () => {
    const resources = await resourcesOf("local");
    const postgres = plain(one(resources, "kubernetes:apps/v1:StatefulSet", "mlflow-postgres"));
    expect(postgres.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 999 });
    const env = postgres.spec.template.spec.containers[0].env;
    expect(env.find((variable: Inputs) => variable.name === "POSTGRES_PASSWORD").valueFrom).toEqual({
      secretKeyRef: { name: "mlflow-database", key: "password" },
    });
    const artifactStore = one(resources, "kubernetes:core/v1:Secret", "mlflow-artifact-store");
    expect(isSecretValue(artifactStore.inputs.stringData)).toBe(true);
    const { values } = release(resources, "mlflow");
    expect(values.backendStore.postgres.host).toBe("postgres.mlflow.svc.cluster.local");
    expect(values.artifactRoot.s3).toEqual({ enabled: true, bucket: "training-mlflow-local", path: "mlflow" });
    expect(values.extraSecretNamesForEnvFrom).toEqual(["mlflow-artifact-store"]);
  });

  it("installs the NVIDIA device plugin for whatever GPU nodes the cluster has", async () => {
    expectGpuPlacement(release(await resourcesOf("local"), "nvidiaDevicePlugin").values);
  });

  it("takes each chart from its configured source, volumes from the configured StorageClass, and waits as configured", async () => {
    const { values, secretKeys } = withTestSecrets(readStackFile(STACKS.get("local") as string));
    const resources = await declare(
      {
        values: {
          ...values,
          "training-platform:helmCharts": JSON.stringify({
            mlflow: { path: "../charts/mlflow" },
            kubePrometheusStack: { repo: "oci://registry.example.com/charts/" },
            dcgmExporter: { repo: "https://mirror.example.com/nvidia" },
          }),
          "training-platform:storageClassName": "local-path",
          "training-platform:deployTimeoutMinutes": "3",
        },
        secretKeys,
      },
      () => platform(loadStackConfig()),
      "local",
    );
    const releases = ofType(resources, "kubernetes:helm.sh/v3:Release").map(plain);
    const byName = (name: string) => releases.find((inputs) => inputs.name === name) as Inputs;
    // A relative path is from the stack files' directory, what the engine reports as the root directory.
    expect(byName("mlflow")).toMatchObject({ chart: resolve(pulumi.runtime.getRootDirectory(), "../charts/mlflow"), timeout: 180 });
    expect(isAbsolute(byName("mlflow").chart)).toBe(true);
    expect(byName("mlflow").version).toBeUndefined();
    expect(byName("mlflow").repositoryOpts).toBeUndefined();
    expect(byName("kube-prometheus-stack")).toMatchObject({
      chart: "oci://registry.example.com/charts/kube-prometheus-stack",
      version: "79.12.0",
    });
    expect(byName("kube-prometheus-stack").repositoryOpts).toBeUndefined();
    expect(byName("dcgm-exporter")).toMatchObject({
      chart: "dcgm-exporter",
      version: "4.7.1",
      repositoryOpts: { repo: "https://mirror.example.com/nvidia" },
    });
    expect(byName("nvidia-device-plugin")).toMatchObject({
      chart: "nvidia-device-plugin",
      repositoryOpts: { repo: HELM_CHARTS.nvidiaDevicePlugin.repo },
    });

    const postgres = one(resources, "kubernetes:apps/v1:StatefulSet", "mlflow-postgres");
    expect(postgres.inputs.spec.volumeClaimTemplates[0].spec.storageClassName).toBe("local-path");
    expect(byName("kube-prometheus-stack").values.prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec.storageClassName).toBe(
      "local-path",
    );
  });

  it("with a pull secret: a docker-registry Secret from a Pulumi secret, which the dispatcher and its Jobs (and only they) pull with", async () => {
    const pullSecret = JSON.stringify({ auths: { "ghcr.io": { auth: Buffer.from("bot:fake-registry-token-0123").toString("base64") } } });
    const { values, secretKeys } = withTestSecrets(readStackFile(STACKS.get("local") as string));
    const resources = await declare(
      {
        values: { ...values, "training-platform:imagePullSecret": pullSecret },
        secretKeys: [...secretKeys, "training-platform:imagePullSecret"],
      },
      () => platform(loadStackConfig()),
      "local",
    );
    const secret = one(resources, "kubernetes:core/v1:Secret", "training-image-pull");
    expect(secret.inputs.metadata).toEqual({ name: "training-image-pull", namespace: "training" });
    expect(secret.inputs.type).toBe("kubernetes.io/dockerconfigjson");
    expect(isSecretValue(secret.inputs.stringData) || isSecretValue(secret.inputs.stringData[".dockerconfigjson"])).toBe(true);
    expect(plain(secret).stringData).toEqual({ ".dockerconfigjson": pullSecret });
    const leaks = resources.filter((resource) => {
      const unwrapped = (value: unknown): string =>
        isSecretValue(value)
          ? ""
          : typeof value === "object" && value !== null
            ? Object.values(value).map(unwrapped).join("\n")
            : String(value);
      return unwrapped(resource.inputs).includes("fake-registry-token") || unwrapped(resource.inputs).includes(pullSecret);
    });
    expect(leaks.map((resource) => resource.name)).toEqual([]);

    const objects = one(resources, "kubernetes:yaml/v2:ConfigGroup", "training-platform").inputs.objs;
    const deployment = objects.find((object: Inputs) => object.kind === "Deployment");
    expect(deployment.spec.template.spec.imagePullSecrets).toEqual([{ name: "training-image-pull" }]);
    expect(deployment.spec.template.spec.containers[0].env).toContainEqual({
      name: "TRAINER_IMAGE_PULL_SECRET",
      value: "training-image-pull",
    });
    const policy = objects.find((object: Inputs) => object.kind === "ValidatingAdmissionPolicy" && object.metadata.name.includes("-jobs-"));
    expect(policy.spec.validations.map((validation: Inputs) => validation.message)).toContain(
      "Jobs of the training dispatcher must have the TrainingJob's shape: no imagePullSecrets but training-image-pull",
    );
  });

  it("sets Postgres' password from the Secret at every start, so a rotated one reaches the database", async () => {
    const postgres = plain(one(await resourcesOf("local"), "kubernetes:apps/v1:StatefulSet", "mlflow-postgres"));
    const container = postgres.spec.template.spec.containers[0];
    const [shell, flag, script] = container.lifecycle.postStart.exec.command;
    expect([shell, flag]).toEqual(["sh", "-c"]);
    expect(script).toContain(`ALTER ROLE :\\"user\\" WITH PASSWORD :'password';`);
    expect(script).toContain('-v password="$POSTGRES_PASSWORD"');
    expect(script).not.toContain(TEST_SECRETS.mlflowDbPassword);
    expect(postgres.spec.template.metadata.annotations[SECRET_CHECKSUM_ANNOTATION]).toMatch(/^[0-9a-f]{64}$/);
  });
});
