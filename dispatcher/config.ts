/**
 * The dispatcher's configuration, from the environment, validated once at start:
 * every missing or invalid value is reported, each on its own line, before
 * anything listens or connects.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { FRAMEWORKS, type Framework, IMAGE_DIGEST } from "../charts-ts/catalogue.ts";
import { EXECUTORS, type Executor } from "../charts-ts/request.ts";
import { DEFAULT_PLATFORM_SETTINGS, type PlatformSettings, platformSettings } from "../charts-ts/settings.ts";
import { type GpuNodeCapacity, parseGpuNodeCapacity } from "./status/node-fit.ts";

/** Environment variable names; the platform chart's Deployment sets the same ones. */
export const DISPATCHER_ENV = {
  port: "PORT",
  host: "HOST",
  kubeconfig: "KUBECONFIG",
  namespace: "TRAINING_NAMESPACE",
  queueing: "TRAINING_QUEUEING",
  registry: "TRAINER_REGISTRY",
  imageVersion: "TRAINER_IMAGE_VERSION",
  imageDigests: "TRAINER_IMAGE_DIGESTS",
  imagePullSecret: "TRAINER_IMAGE_PULL_SECRET",
  mlflowTrackingUri: "MLFLOW_TRACKING_URI",
  defaultExecutor: "DEFAULT_EXECUTOR",
  apiToken: "DISPATCHER_API_TOKEN",
  apiTokenFile: "DISPATCHER_API_TOKEN_FILE",
  bodyLimitBytes: "BODY_LIMIT_BYTES",
  localTrainerDir: "LOCAL_TRAINER_DIR",
  localPython: "LOCAL_PYTHON",
  localWorkDir: "LOCAL_WORK_DIR",
  localGraceSeconds: "LOCAL_GRACE_SECONDS",
  startupDeadlineSeconds: "STARTUP_DEADLINE_SECONDS",
  gpuNodeCapacity: "GPU_NODE_CAPACITY",
  objectStoreSecret: "OBJECT_STORE_SECRET",
  backendConfigMap: "BACKEND_CONFIG_MAP",
  backoffLimit: "JOB_BACKOFF_LIMIT",
  ttlSecondsAfterFinished: "JOB_TTL_SECONDS_AFTER_FINISHED",
  terminationGracePeriodSeconds: "TRAINER_TERMINATION_GRACE_SECONDS",
  sharedMemorySize: "TRAINER_SHARED_MEMORY",
  runAsUser: "TRAINER_RUN_AS_USER",
  backendUrl: "BACKEND_API_URL",
  backendToken: "BACKEND_TOKEN",
  backendTokenFile: "BACKEND_TOKEN_FILE",
} as const;

export type ClusterAccess =
  | { readonly kind: "kubeconfig"; readonly path: string }
  | { readonly kind: "in-cluster" }
  | { readonly kind: "none" };

export interface DispatcherConfig {
  readonly port: number;
  readonly host: string;
  readonly cluster: ClusterAccess;
  readonly platform: PlatformSettings;
  readonly defaultExecutor: Executor;
  /** The bearer token callers present. Never logged. */
  readonly apiToken: string;
  readonly bodyLimitBytes: number;
  /** A trainer stuck on its image or configuration longer than this fails the job. */
  readonly startupDeadlineSeconds: number;
  /** GPUs per node of the largest pool of each gpu-type; empty when the pools are not declared. */
  readonly gpuNodeCapacity: GpuNodeCapacity;
  readonly local: {
    readonly trainerDir: string;
    readonly python: string;
    readonly workDir: string;
    readonly graceSeconds: number;
  };
  readonly backendUrl?: string;
  readonly backendToken?: string;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const port = z.coerce.number().int().min(1).max(65_535);
const positiveInt = z.coerce.number().int().positive();
const wholeNumber = z.coerce.number().int().min(0);
const secretOrConfigMapName = z.string().regex(DNS_SUBDOMAIN);

/**
 * The Job settings besides the image's: each travels only when it differs from the default, which
 * is also what the dispatcher falls back to, so an unchanged platform's Deployment stays as it was.
 */
const JOB_SETTINGS_ENV = {
  objectStoreSecretName: { name: DISPATCHER_ENV.objectStoreSecret, schema: secretOrConfigMapName, hint: "must be a Secret name" },
  backendConfigMapName: { name: DISPATCHER_ENV.backendConfigMap, schema: secretOrConfigMapName, hint: "must be a ConfigMap name" },
  backoffLimit: { name: DISPATCHER_ENV.backoffLimit, schema: wholeNumber, hint: "must be a whole number" },
  ttlSecondsAfterFinished: { name: DISPATCHER_ENV.ttlSecondsAfterFinished, schema: wholeNumber, hint: "must be a whole number of seconds" },
  terminationGracePeriodSeconds: {
    name: DISPATCHER_ENV.terminationGracePeriodSeconds,
    schema: wholeNumber,
    hint: "must be a whole number of seconds",
  },
  sharedMemorySize: {
    name: DISPATCHER_ENV.sharedMemorySize,
    schema: z.string().regex(/^\d+(\.\d+)?([KMGT]i?)?$/),
    hint: "must be a quantity such as 2Gi",
  },
  runAsUser: { name: DISPATCHER_ENV.runAsUser, schema: positiveInt, hint: "must be a positive user id (trainers run as non-root)" },
} as const satisfies Partial<Record<keyof PlatformSettings, { name: string; schema: z.ZodType; hint: string }>>;

type JobSettingKey = keyof typeof JOB_SETTINGS_ENV;

/**
 * The platform settings a dispatcher renders TrainingJobs with, as the environment that carries
 * them: the platform chart's Deployment sets exactly this, and loadConfig reads it back, so the
 * Jobs run the trainer image, tag, digests, pull secret, Secret and ConfigMap the stack deployed
 * (and its admission policy allows).
 */
export function platformSettingsEnv(settings: PlatformSettings): Record<string, string> {
  const changed = (Object.keys(JOB_SETTINGS_ENV) as JobSettingKey[]).filter((key) => settings[key] !== DEFAULT_PLATFORM_SETTINGS[key]);
  return {
    ...Object.fromEntries(changed.map((key) => [JOB_SETTINGS_ENV[key].name, String(settings[key])])),
    [DISPATCHER_ENV.namespace]: settings.namespace,
    [DISPATCHER_ENV.registry]: settings.registry,
    [DISPATCHER_ENV.imageVersion]: settings.trainerImageVersion,
    ...(Object.keys(settings.trainerImageDigests).length > 0 && {
      [DISPATCHER_ENV.imageDigests]: Object.entries(settings.trainerImageDigests)
        .map(([framework, digest]) => `${framework}=${digest}`)
        .sort()
        .join(","),
    }),
    [DISPATCHER_ENV.mlflowTrackingUri]: settings.mlflowTrackingUri,
    ...(settings.imagePullSecret !== undefined && { [DISPATCHER_ENV.imagePullSecret]: settings.imagePullSecret }),
  };
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid dispatcher configuration:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** A secret given either inline or as a file (a mounted Secret); both at once is ambiguous. */
function secretFrom(env: Env, inline: string, file: string, problems: string[], required: boolean): string | undefined {
  const value = env[inline];
  const path = env[file];
  if (value !== undefined && path !== undefined) {
    problems.push(`${inline} and ${file} are both set: set one`);
    return undefined;
  }
  if (path !== undefined) {
    if (!existsSync(path)) {
      problems.push(`${file}: no file at ${path}`);
      return undefined;
    }
    const fromFile = readFileSync(path, "utf8").trim();
    if (fromFile === "") problems.push(`${file}: ${path} is empty`);
    return fromFile;
  }
  if (value !== undefined && value.trim() === "") problems.push(`${inline} is empty`);
  if (value === undefined && required)
    problems.push(`${inline} or ${file} must be set: the token callers present as "Authorization: Bearer <token>"`);
  return value;
}

function parsed<T>(schema: z.ZodType<T>, env: Env, name: string, fallback: T, problems: string[], hint: string): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const result = schema.safeParse(raw);
  if (!result.success) {
    problems.push(`${name}=${JSON.stringify(raw)}: ${hint}`);
    return fallback;
  }
  return result.data;
}

function clusterAccess(env: Env, problems: string[]): ClusterAccess {
  const kubeconfig = env[DISPATCHER_ENV.kubeconfig];
  if (kubeconfig) {
    if (!existsSync(kubeconfig)) problems.push(`${DISPATCHER_ENV.kubeconfig}: no file at ${kubeconfig}`);
    return { kind: "kubeconfig", path: kubeconfig };
  }
  return env.KUBERNETES_SERVICE_HOST ? { kind: "in-cluster" } : { kind: "none" };
}

/** TRAINER_IMAGE_DIGESTS: `<framework>=sha256:<hex>,...`, the digest each framework's trainer image is pinned to. */
function trainerImageDigestsFrom(env: Env, problems: string[]): Partial<Record<Framework, string>> | undefined {
  const raw = env[DISPATCHER_ENV.imageDigests];
  if (raw === undefined || raw.trim() === "") return undefined;
  const digests: Partial<Record<Framework, string>> = {};
  for (const entry of raw.split(",")) {
    const [framework = "", digest = ""] = entry.split("=", 2);
    if (!FRAMEWORKS.includes(framework as Framework) || !IMAGE_DIGEST.test(digest)) {
      problems.push(
        `${DISPATCHER_ENV.imageDigests}: ${JSON.stringify(entry)} is not <framework>=sha256:<64 hex digits> (frameworks: ${FRAMEWORKS.join(", ")})`,
      );
      continue;
    }
    digests[framework as Framework] = digest;
  }
  return digests;
}

function jobSettingsFrom(env: Env, problems: string[]): Partial<Pick<PlatformSettings, JobSettingKey>> {
  return Object.fromEntries(
    Object.entries(JOB_SETTINGS_ENV).map(([key, { name, schema, hint }]) => [
      key,
      parsed<unknown>(schema, env, name, undefined, problems, hint),
    ]),
  );
}

function gpuNodeCapacityFrom(env: Env, problems: string[]): GpuNodeCapacity {
  const raw = env[DISPATCHER_ENV.gpuNodeCapacity];
  if (raw === undefined || raw.trim() === "") return new Map();
  try {
    return parseGpuNodeCapacity(raw);
  } catch (error) {
    problems.push(`${DISPATCHER_ENV.gpuNodeCapacity}=${JSON.stringify(raw)}: ${(error as Error).message}`);
    return new Map();
  }
}

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): DispatcherConfig {
  const problems: string[] = [];
  const cluster = clusterAccess(env, problems);
  const defaultExecutor = parsed(
    z.enum(EXECUTORS),
    env,
    DISPATCHER_ENV.defaultExecutor,
    cluster.kind === "none" ? "local" : "kubernetes",
    problems,
    `must be one of ${EXECUTORS.join(", ")}`,
  );
  if (defaultExecutor === "kubernetes" && cluster.kind === "none") {
    problems.push(`${DISPATCHER_ENV.defaultExecutor}=kubernetes needs a cluster: set ${DISPATCHER_ENV.kubeconfig} or run in a pod`);
  }
  if (defaultExecutor === "local" && cluster.kind === "in-cluster") {
    problems.push(`${DISPATCHER_ENV.defaultExecutor}=local is not available in a pod: the dispatcher image holds no trainer`);
  }
  const apiToken = secretFrom(env, DISPATCHER_ENV.apiToken, DISPATCHER_ENV.apiTokenFile, problems, true);
  const backendToken = secretFrom(env, DISPATCHER_ENV.backendToken, DISPATCHER_ENV.backendTokenFile, problems, false);
  const backendUrl = parsed(z.url({ protocol: /^https?$/ }), env, DISPATCHER_ENV.backendUrl, undefined, problems, "must be an http(s) URL");
  const namespace = parsed(
    z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/),
    env,
    DISPATCHER_ENV.namespace,
    DEFAULT_PLATFORM_SETTINGS.namespace,
    problems,
    "must be a Kubernetes namespace name",
  );
  const imagePullSecret = parsed<string | undefined>(
    secretOrConfigMapName,
    env,
    DISPATCHER_ENV.imagePullSecret,
    undefined,
    problems,
    "must be a Secret name (lower-case letters, digits, '-' and '.')",
  );
  const config: DispatcherConfig = {
    port: parsed(port, env, DISPATCHER_ENV.port, 8080, problems, "must be a port number 1..65535"),
    host: env[DISPATCHER_ENV.host] || "0.0.0.0",
    cluster,
    platform: platformSettings({
      namespace,
      registry: env[DISPATCHER_ENV.registry] || undefined,
      trainerImageVersion: env[DISPATCHER_ENV.imageVersion] || undefined,
      trainerImageDigests: trainerImageDigestsFrom(env, problems),
      mlflowTrackingUri: env[DISPATCHER_ENV.mlflowTrackingUri] || undefined,
      queueing: parsed(
        z.enum(["true", "false"]).transform((value) => value === "true"),
        env,
        DISPATCHER_ENV.queueing,
        DEFAULT_PLATFORM_SETTINGS.queueing,
        problems,
        "must be true or false (the platform chart's queueing setting: Jobs queued by Kueue)",
      ),
      imagePullSecret,
      ...jobSettingsFrom(env, problems),
    }),
    defaultExecutor,
    apiToken: apiToken ?? "",
    bodyLimitBytes: parsed(
      positiveInt,
      env,
      DISPATCHER_ENV.bodyLimitBytes,
      256 * 1024,
      problems,
      "must be a positive whole number of bytes",
    ),
    startupDeadlineSeconds: parsed(
      positiveInt,
      env,
      DISPATCHER_ENV.startupDeadlineSeconds,
      600,
      problems,
      "must be a positive whole number of seconds",
    ),
    gpuNodeCapacity: gpuNodeCapacityFrom(env, problems),
    local: {
      trainerDir: resolve(cwd, env[DISPATCHER_ENV.localTrainerDir] || "images/smoke-trainer"),
      python: env[DISPATCHER_ENV.localPython] || "python3",
      workDir: resolve(cwd, env[DISPATCHER_ENV.localWorkDir] || ".local-jobs"),
      graceSeconds: parsed(positiveInt, env, DISPATCHER_ENV.localGraceSeconds, 30, problems, "must be a positive whole number of seconds"),
    },
    ...(backendUrl !== undefined && { backendUrl }),
    ...(backendToken !== undefined && { backendToken }),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
