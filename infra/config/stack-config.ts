/**
 * The stack configuration (`training-platform:*` keys of Pulumi.<stack>.yaml) as
 * one zod schema per cloud. It is validated before any resource is declared.
 */
import { z } from "zod";
import { FRAMEWORKS, type Framework, IMAGE_DIGEST } from "../../charts-ts/catalogue.ts";
import { clusterQueueName } from "../../charts-ts/kueue-contract.ts";
import { parseQuantity } from "../../charts-ts/quantity.ts";
import { DEFAULT_PLATFORM_SETTINGS, type PlatformSettingsProps } from "../../charts-ts/settings.ts";
import { HELM_CHARTS, type HelmChartKey } from "../helm-charts.ts";
import { parseMlflowEndpoint } from "../mlflow/mlflow-endpoint.ts";
import { EC2_GPUS_PER_INSTANCE } from "../nodes/ec2-gpu-instances.ts";
import { NVIDIA_AMI_TYPES } from "../nodes/eks-node-group.ts";

/**
 * Secret configuration, set with `pulumi config set --secret <key> <value>` and
 * never written in plain text. Every one is required.
 */
export const SECRET_CONFIG = {
  r2Endpoint: {
    description: "endpoint URL of the object store the trainers use",
    schema: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
  },
  r2AccessKey: { description: "access key id for that object store", schema: z.string().min(1, "must not be empty") },
  r2SecretKey: { description: "secret access key for that object store", schema: z.string().min(1, "must not be empty") },
  dispatcherApiToken: {
    description: "bearer token the backend presents to the dispatcher",
    schema: z.string().min(32, "must be at least 32 characters"),
  },
  backendToken: { description: "bearer token the dispatcher presents to the backend", schema: z.string().min(1, "must not be empty") },
  mlflowDbPassword: {
    description: "password of MLflow's Postgres user",
    // It ends up inside MLflow's postgresql:// URL, and RDS refuses '/', '@', '"' and spaces.
    schema: z.string().regex(/^[A-Za-z0-9_.~-]{16,128}$/, "must be 16 to 128 letters, digits, '_', '.', '~' or '-'"),
  },
  grafanaAdminPassword: { description: "password of Grafana's admin user", schema: z.string().min(12, "must be at least 12 characters") },
} as const satisfies Record<string, { description: string; schema: z.ZodType<string> }>;

export type SecretConfigKey = keyof typeof SECRET_CONFIG;

/** Secret configuration a stack may leave out; when set, it must be set with --secret. */
export const OPTIONAL_SECRET_CONFIG = {
  imagePullSecret: {
    description: "the `.dockerconfigjson` of a docker-registry Secret that the dispatcher and the trainers pull their images with",
    schema: z.string().refine((text) => dockerConfigRegistries(text) !== undefined, {
      message: 'must be a docker config JSON with a non-empty "auths" object, as a docker-registry Secret\'s `.dockerconfigjson` holds it',
    }),
  },
} as const satisfies Record<string, { description: string; schema: z.ZodType<string> }>;

export type OptionalSecretConfigKey = keyof typeof OPTIONAL_SECRET_CONFIG;

/** The registry hosts (`ghcr.io`, `registry.example.com:5000`) a docker config JSON holds credentials for; undefined if it is none. */
export function dockerConfigRegistries(text: string): string[] | undefined {
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    return undefined;
  }
  const auths = (config as { auths?: unknown } | null)?.auths;
  if (typeof auths !== "object" || auths === null || Array.isArray(auths) || Object.keys(auths).length === 0) return undefined;
  return Object.keys(auths).map(registryHost);
}

/** Docker Hub's names for itself: `docker login` writes `https://index.docker.io/v1/`, images say `docker.io`. */
const DOCKER_HUB_ALIASES = new Set(["index.docker.io", "registry-1.docker.io"]);

/** The host (and port) of a registry reference or docker config key: `https://ghcr.io/v1/` and `ghcr.io/myorg` are both `ghcr.io`. */
export function registryHost(reference: string): string {
  const host = reference.replace(/^[a-z]+:\/\//, "").split("/")[0] as string;
  return DOCKER_HUB_ALIASES.has(host) ? "docker.io" : host;
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const dnsLabel = z
  .string()
  .regex(DNS_LABEL, "must be lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit");
const dnsSubdomain = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/, "must be a DNS subdomain (lower-case letters, digits, '-' and '.')");

/** Pulumi hands structured values (maps, lists, numbers, booleans) to the program as JSON text. */
function fromConfig<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (typeof value === "string" ? parseJsonOr(value) : value), schema);
}

function parseJsonOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Unique `name`s, reported at the duplicate. */
function uniqueNames<T extends { name: string }>(items: readonly T[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  items.forEach((item, index) => {
    if (seen.has(item.name)) ctx.addIssue({ code: "custom", path: [index, "name"], message: `duplicate name "${item.name}"` });
    seen.add(item.name);
  });
}

function minNotAboveMax<Min extends string, Max extends string>(min: Min, max: Max) {
  return (pool: Record<Min | Max, number>, ctx: z.RefinementCtx) => {
    if (pool[min] > pool[max]) ctx.addIssue({ code: "custom", path: [min], message: `must not be above ${max} (${pool[max]})` });
  };
}

// GCP's label rules, the stricter of the two clouds, so one set of tags serves both.
const costTagsSchema = z.record(
  z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, "tag keys must be lower-case letters, digits, '_' and '-', starting with a letter"),
  z.string().regex(/^[a-z0-9_-]{0,63}$/, "tag values must be lower-case letters, digits, '_' and '-'"),
);

/** The image settings live in `images`, the one place a stack says which images it runs. */
const movedToImages = (key: string) => z.undefined({ error: `set under images (images.${key}), with the dispatcher's` }).optional();

const platformSettingsSchema = z.strictObject({
  registry: movedToImages("registry"),
  trainerImageVersion: movedToImages("trainerTag"),
  trainerImageDigests: movedToImages("trainerDigests"),
  imagePullSecret: z
    .undefined({ error: "set the secret imagePullSecret (the docker config) instead: the stack creates that Secret" })
    .optional(),
  namespace: dnsLabel.optional(),
  objectStoreSecretName: dnsSubdomain.optional(),
  backendConfigMapName: dnsSubdomain.optional(),
  mlflowTrackingUri: z
    .string()
    .refine(
      (uri) => parseMlflowEndpoint(uri) !== undefined,
      "must be http://<service>.<namespace>.svc.cluster.local:<port>: this stack deploys MLflow there",
    )
    .optional(),
  backoffLimit: z.int().min(0).optional(),
  ttlSecondsAfterFinished: z.int().min(0).optional(),
  terminationGracePeriodSeconds: z.int().min(0).optional(),
  sharedMemorySize: z.string().min(1).optional(),
  runAsUser: z.int().min(1, "must not be 0: trainers run as non-root").optional(),
}) satisfies z.ZodType<PlatformSettingsProps>;

/** One chart's source: exactly one of a mirror or OCI registry (`repo`) and a local chart (`path`). */
const chartSourceSchema = z
  .strictObject({
    repo: z.url({ protocol: /^(https?|oci)$/, error: "must be an http(s) or oci:// URL" }).optional(),
    path: z.string().min(1, "must not be empty").optional(),
  })
  .superRefine((source, ctx) => {
    if ((source.repo === undefined) === (source.path === undefined))
      ctx.addIssue({ code: "custom", message: "set exactly one of repo (a mirror or OCI registry) and path (a local chart)" });
  })
  .transform((source) => (source.path !== undefined ? { path: source.path } : { repo: source.repo as string }));

const chartSourcesSchema = z.strictObject(
  Object.fromEntries(Object.keys(HELM_CHARTS).map((key) => [key, chartSourceSchema.optional()])) as Record<
    HelmChartKey,
    z.ZodOptional<typeof chartSourceSchema>
  >,
);

const imageTag = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, "must be an image tag: letters, digits, '_', '.' and '-', at most 128")
  .refine((tag) => tag !== "latest", "must not be latest: a floating tag changes what runs without a deployment");

const IMAGE_TAG_KEYS = ["dispatcherTag", "trainerTag"] as const;

const imageDigest = z.string().regex(IMAGE_DIGEST, "must be sha256:<64 lower-case hex digits>");

/**
 * Which images a stack runs: the registry CI pushes to, and the tags (and digest) of one build.
 * A cloud stack names them all (the pulumi workflow sets the tags of the commit it deploys);
 * the local stack falls back to the platform chart's defaults.
 */
function imagesSchema(cloud: "eks" | "gke" | "local") {
  return fromConfig(
    z
      .strictObject({
        registry: z
          .string()
          .regex(
            /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/,
            "must be a registry and path such as ghcr.io/myorg (lower-case)",
          )
          .optional(),
        dispatcherTag: imageTag.optional(),
        trainerTag: imageTag.optional(),
        dispatcherDigest: imageDigest.optional(),
        /** Per framework (catalogue key): the digest of its trainer image at trainerTag. */
        trainerDigests: z.strictObject(Object.fromEntries(FRAMEWORKS.map((framework) => [framework, imageDigest.optional()]))).optional(),
      })
      .prefault({})
      .superRefine((images, ctx) => {
        if (cloud === "local") return;
        if (images.registry === undefined)
          ctx.addIssue({ code: "custom", path: ["registry"], message: "required for a cloud stack (eks, gke): the registry CI pushes to" });
        for (const key of IMAGE_TAG_KEYS) {
          if (images[key] === undefined)
            ctx.addIssue({
              code: "custom",
              path: [key],
              message: `required for a cloud stack (eks, gke), which never falls back to a default tag: the tag CI pushed (the commit SHA); the pulumi workflow sets it, by hand \`pulumi config set --path images.${key} <tag>\``,
            });
        }
      })
      .transform(({ registry, dispatcherTag, trainerTag, dispatcherDigest, trainerDigests }) => ({
        registry: registry ?? DEFAULT_PLATFORM_SETTINGS.registry,
        dispatcherTag: dispatcherTag ?? DEFAULT_PLATFORM_SETTINGS.trainerImageVersion,
        trainerTag: trainerTag ?? DEFAULT_PLATFORM_SETTINGS.trainerImageVersion,
        ...(dispatcherDigest !== undefined && { dispatcherDigest }),
        trainerDigests: (trainerDigests ?? {}) as Partial<Record<Framework, string>>,
      })),
  );
}

// ---- queueing (Kueue) -------------------------------------------------------------------------

const quantity = z.string().refine((value) => parseQuantity(value) !== undefined, "must be a Kubernetes quantity such as 256 or 1Ti");

/** A GPU pool of an existing cluster, for its queues: the cloud stacks derive theirs from `gpuPools`. */
const queuePoolSchema = z.strictObject({
  /** The nodes' `gpu-type` label value. */
  gpuType: dnsLabel,
  /** Nodes of this type the cluster has, or may scale to. */
  maxSize: z.int().min(1),
  gpusPerNode: z.int().min(1).max(16),
});

const queueingSchema = z
  .strictObject({
    /** @default true once the key is set: `queueing: false` (or no key) is off */
    enabled: z.boolean().default(true),
    /** The backend's projectIds: project N gets LocalQueue `project-N` (queueProjectOf) and an even share of every GPU type. */
    projects: z
      .array(
        z
          .string()
          .regex(
            /^[1-9][0-9]*$/,
            "must be a backend projectId (decimal digits, no leading zero): a request of projectId N waits in LocalQueue project-N",
          ),
      )
      .min(1, "must name at least one project")
      .superRefine((projects, ctx) => {
        projects.forEach((project, index) => {
          if (projects.indexOf(project) !== index)
            ctx.addIssue({ code: "custom", path: [index], message: `duplicate project "${project}"` });
        });
      })
      .optional(),
    /** CPU and memory each project holds before it borrows. @default TrainingQueues' (256 CPUs, 1Ti) */
    cpuQuotaPerProject: z.strictObject({ cpu: quantity, memory: quantity }).optional(),
    /** Local stack only (required there): the cluster's GPU pools. */
    gpuPools: z.array(queuePoolSchema).optional(),
    kueue: z
      .strictObject({
        /** false for a cluster that already runs Kueue (v0.17, v1beta2 API): only the queues are applied. */
        install: z.boolean().default(true),
        /** Every replica serves the webhooks, which training Jobs cannot be created without; one leads. */
        replicas: z.int().min(1).max(5).default(2),
      })
      .prefault({}),
  })
  .superRefine((queueing, ctx) => {
    if (queueing.enabled && queueing.projects === undefined)
      ctx.addIssue({ code: "custom", path: ["projects"], message: "required when queueing is enabled" });
  });

/** `false` and no key at all mean off: the platform as before Kueue; `true` is on, and then asks for its projects. */
const queueingConfig = fromConfig(
  z.preprocess((value) => (value === false || value === undefined ? { enabled: false } : value === true ? {} : value), queueingSchema),
);

export type QueueingConfig = z.output<typeof queueingSchema>;

/** Keys every stack has, whatever its cloud. */
const commonKeys = {
  backendApiUrl: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
  costTags: fromConfig(costTagsSchema.prefault({})),
  platform: fromConfig(platformSettingsSchema.prefault({})),
  quota: fromConfig(z.strictObject({ maxGpus: z.int().positive().optional(), maxJobs: z.int().positive().optional() }).prefault({})),
  dispatcherReplicas: fromConfig(z.int().positive().default(2)),
  /** Where each Helm chart comes from, by its HELM_CHARTS key; unset charts come from their public repositories. */
  helmCharts: fromConfig(chartSourcesSchema.prefault({})),
  /** StorageClass of the in-cluster Postgres and Prometheus volumes. @default the cluster's default StorageClass */
  storageClassName: dnsSubdomain.optional(),
  /** How long `up` waits for a Helm release or the Postgres rollout to become ready. */
  deployTimeoutMinutes: fromConfig(z.int().positive().max(120).default(10)),
  /** Kueue and the training queues (infra/README.md, "Queueing"). */
  queueing: queueingConfig,
  /** Databases, clusters and buckets refuse deletion; off for throwaway stacks. */
  deletionProtection: fromConfig(z.boolean().default(true)),
  monitoring: fromConfig(
    z
      .strictObject({
        retention: z
          .string()
          .regex(/^\d+[hdwy]$/, "must be a Prometheus duration such as 15d")
          .default("15d"),
        storageGi: z.int().positive().default(50),
      })
      .prefault({}),
  ),
};

const clusterName = z
  .string()
  .regex(/^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$/, "must be lower-case letters, digits and '-', at most 40, starting with a letter");

const eksGpuPoolSchema = z
  .strictObject({
    name: dnsLabel,
    /** Value of the gpu-type node label, what requests name in resources.gpuType. */
    gpuType: dnsLabel,
    instanceType: z.string().regex(/^[a-z0-9-]+\.[a-z0-9]+$/, "must be an EC2 instance type such as g5.xlarge"),
    /** @default the instance type's GPU count, when EC2_GPUS_PER_INSTANCE knows it */
    gpusPerNode: z.int().min(1).max(16).optional(),
    amiType: z.enum(NVIDIA_AMI_TYPES).default("AL2023_x86_64_NVIDIA"),
    spot: z.boolean().default(false),
    minSize: z.int().min(0).default(0),
    maxSize: z.int().min(1),
    diskSizeGiB: z.int().min(20).default(200),
  })
  .superRefine(minNotAboveMax("minSize", "maxSize"))
  .superRefine(({ instanceType, gpusPerNode }, ctx) => {
    const known = EC2_GPUS_PER_INSTANCE[instanceType];
    if (known === undefined && gpusPerNode === undefined)
      ctx.addIssue({ code: "custom", path: ["gpusPerNode"], message: `required: ${instanceType} is not a known NVIDIA instance type` });
    if (known !== undefined && gpusPerNode !== undefined && known !== gpusPerNode)
      ctx.addIssue({ code: "custom", path: ["gpusPerNode"], message: `${instanceType} has ${known} GPU(s), not ${gpusPerNode}` });
  })
  .transform(({ gpusPerNode, ...pool }) => ({
    ...pool,
    gpusPerNode: gpusPerNode ?? (EC2_GPUS_PER_INSTANCE[pool.instanceType] as number),
  }));

const eksNetworkSchema = z
  .strictObject({
    vpc: z
      .strictObject({
        cidrBlock: z.cidrv4().refine((cidr) => cidr.endsWith("/16"), "must be a /16"),
        availabilityZones: z.array(z.string().min(1)).min(2).max(4),
      })
      .optional(),
    subnetIds: z
      .strictObject({
        private: z.array(z.string().regex(/^subnet-[0-9a-f]+$/, "must be a subnet id")).min(2),
        public: z.array(z.string().regex(/^subnet-[0-9a-f]+$/, "must be a subnet id")).default([]),
      })
      .optional(),
  })
  .superRefine((network, ctx) => {
    if (network.vpc && network.subnetIds) ctx.addIssue({ code: "custom", message: "vpc and subnetIds are mutually exclusive: set one" });
    if (!network.vpc && !network.subnetIds)
      ctx.addIssue({ code: "custom", message: "required: vpc (a new VPC) or subnetIds (existing subnets)" });
  });

const eksStackSchema = z.strictObject({
  cloud: z.literal("eks"),
  clusterName,
  eks: fromConfig(
    z.strictObject({
      region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "must be an AWS region such as us-east-1"),
      kubernetesVersion: z
        .string()
        .regex(/^1\.\d{2}$/, "must be a minor version such as 1.32")
        .default("1.32"),
      network: eksNetworkSchema,
      /** Who may reach the public API endpoint. */
      publicAccessCidrs: z.array(z.cidrv4()).min(1).default(["0.0.0.0/0"]),
      /** IAM principals that get cluster-admin besides the cluster's creator. */
      clusterAdmins: z
        .array(z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/.+$/, "must be an IAM role or user ARN"))
        .default([]),
      systemNodes: z
        .strictObject({
          instanceTypes: z.array(z.string().min(1)).min(1).default(["m6i.large"]),
          minSize: z.int().min(1).default(2),
          maxSize: z.int().min(1).default(4),
        })
        .superRefine(minNotAboveMax("minSize", "maxSize"))
        .prefault({}),
    }),
  ),
  gpuPools: fromConfig(z.array(eksGpuPoolSchema).min(1).superRefine(uniqueNames)),
  images: imagesSchema("eks"),
  mlflow: fromConfig(
    z
      .strictObject({
        database: z
          .strictObject({
            instanceClass: z.string().startsWith("db.").default("db.t4g.small"),
            allocatedStorageGiB: z.int().min(20).default(20),
            engineVersion: z.string().default("16"),
            multiAz: z.boolean().default(false),
          })
          .prefault({}),
      })
      .prefault({}),
  ),
  ...commonKeys,
});

const gkeGpuPoolSchema = z
  .strictObject({
    name: dnsLabel,
    gpuType: dnsLabel,
    machineType: z.string().min(1),
    /** GCE accelerator type, e.g. nvidia-l4, nvidia-tesla-t4, nvidia-tesla-a100. */
    acceleratorType: z.string().regex(/^nvidia-[a-z0-9-]+$/, "must be a GCE accelerator type such as nvidia-l4"),
    gpusPerNode: z.int().min(1).max(16).default(1),
    spot: z.boolean().default(false),
    minNodes: z.int().min(0).default(0),
    maxNodes: z.int().min(1),
    diskSizeGb: z.int().min(20).default(200),
    /** Zones that have this accelerator. @default the cluster's zones */
    nodeLocations: z.array(z.string().min(1)).min(1).optional(),
    driverVersion: z.enum(["DEFAULT", "LATEST"]).default("LATEST"),
  })
  .superRefine(minNotAboveMax("minNodes", "maxNodes"));

const gkeStackSchema = z.strictObject({
  cloud: z.literal("gke"),
  clusterName,
  gke: fromConfig(
    z.strictObject({
      project: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, "must be a GCP project id"),
      region: z.string().regex(/^[a-z]+-[a-z]+\d$/, "must be a GCP region such as us-central1"),
      network: z.string().min(1).default("default"),
      subnetwork: z.string().min(1).optional(),
      releaseChannel: z.enum(["RAPID", "REGULAR", "STABLE"]).default("REGULAR"),
      systemNodes: z
        .strictObject({
          machineType: z.string().min(1).default("e2-standard-4"),
          minNodes: z.int().min(1).default(1),
          maxNodes: z.int().min(1).default(3),
        })
        .superRefine(minNotAboveMax("minNodes", "maxNodes"))
        .prefault({}),
    }),
  ),
  gpuPools: fromConfig(z.array(gkeGpuPoolSchema).min(1).superRefine(uniqueNames)),
  images: imagesSchema("gke"),
  mlflow: fromConfig(
    z
      .strictObject({
        database: z
          .strictObject({
            tier: z.string().default("db-custom-1-3840"),
            diskSizeGb: z.int().min(10).default(20),
            databaseVersion: z.string().startsWith("POSTGRES_").default("POSTGRES_16"),
            highAvailability: z.boolean().default(false),
          })
          .prefault({}),
      })
      .prefault({}),
  ),
  ...commonKeys,
});

const localStackSchema = z.strictObject({
  cloud: z.literal("local"),
  kubernetes: fromConfig(
    z.strictObject({
      /** @default the KUBECONFIG environment variable, then ~/.kube/config */
      kubeconfig: z.string().min(1).optional(),
      /** Required, so a stack never deploys into whatever cluster happens to be current. */
      context: z.string().min(1),
    }),
  ),
  mlflow: fromConfig(
    z.strictObject({
      /** An S3-compatible bucket (the object store the trainers use) for MLflow's artifacts. */
      artifacts: z.strictObject({ bucket: z.string().min(3), path: z.string().default("mlflow") }),
      database: z.strictObject({ storageGi: z.int().positive().default(10) }).prefault({}),
    }),
  ),
  images: imagesSchema("local"),
  ...commonKeys,
});

export const stackConfigSchema = z
  .discriminatedUnion("cloud", [eksStackSchema, gkeStackSchema, localStackSchema], {
    error: "must be one of eks, gke, local",
  })
  .superRefine(queueingFitsTheStack);

/** What the queueing block needs from the rest of the stack, checked here so nothing fails half-declared. */
function queueingFitsTheStack(
  config: { cloud: string; queueing: QueueingConfig; quota: { maxGpus?: number | undefined }; platform: PlatformSettingsProps },
  ctx: z.RefinementCtx,
): void {
  const { queueing } = config;
  const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: "custom", path, message });
  if (config.cloud === "local" && queueing.enabled && queueing.gpuPools === undefined)
    issue(["queueing", "gpuPools"], "required on the local stack: the cluster's GPU pools ([] for none), {gpuType, maxSize, gpusPerNode}");
  if (config.cloud !== "local" && queueing.gpuPools !== undefined)
    issue(["queueing", "gpuPools"], "only for the local stack: the queues come from gpuPools here");
  if (!queueing.enabled) return;
  if (config.quota.maxGpus !== undefined)
    issue(["quota", "maxGpus"], "not used while queueing is on: Kueue's quotas (the GPU pools) cap the GPUs; remove it");
  const namespace = config.platform.namespace ?? DEFAULT_PLATFORM_SETTINGS.namespace;
  (queueing.projects ?? []).forEach((project, index) => {
    const name = clusterQueueName(namespace, project);
    if (name.length > 63) issue(["queueing", "projects", index], `too long: its ClusterQueue "${name}" would exceed 63 characters`);
  });
}

export type PlainStackConfig = z.output<typeof stackConfigSchema>;
