import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { platformSettings } from "../../charts-ts/settings.ts";
import { ConfigError, loadConfig, platformSettingsEnv } from "../../dispatcher/config.ts";

const dir = mkdtempSync(join(tmpdir(), "config-"));
const tokenFile = join(dir, "token");
writeFileSync(tokenFile, "s3cret-from-file\n");
const kubeconfig = join(dir, "kubeconfig");
writeFileSync(kubeconfig, "apiVersion: v1\nkind: Config\n");

const problemsOf = (env: Record<string, string>): readonly string[] => {
  try {
    loadConfig(env, dir);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
};

describe("loadConfig", () => {
  it("defaults to the local executor when no cluster is configured", () => {
    const config = loadConfig({ DISPATCHER_API_TOKEN: "t" }, dir);
    expect(config).toMatchObject({ port: 8080, defaultExecutor: "local", cluster: { kind: "none" }, bodyLimitBytes: 262_144 });
    expect(config.platform.namespace).toBe("training");
    expect(config.local.workDir).toBe(join(dir, ".local-jobs"));
  });

  it("uses Kubernetes by default when a kubeconfig is given, and reads the token from a file", () => {
    const config = loadConfig({ KUBECONFIG: kubeconfig, DISPATCHER_API_TOKEN_FILE: tokenFile, TRAINER_REGISTRY: "r.example/ml" }, dir);
    expect(config).toMatchObject({
      defaultExecutor: "kubernetes",
      cluster: { kind: "kubeconfig", path: kubeconfig },
      apiToken: "s3cret-from-file",
    });
    expect(config.platform.registry).toBe("r.example/ml");
  });

  it("renders Jobs with the settings the platform chart's Deployment passes: image, tag, digests, pull secret", () => {
    const settings = platformSettings({
      namespace: "team-a",
      registry: "ghcr.io/acme",
      trainerImageVersion: "3f2c1d0",
      trainerImageDigests: { timm: `sha256:${"b2".repeat(32)}`, ultralytics: `sha256:${"a1".repeat(32)}` },
      mlflowTrackingUri: "http://mlflow.team-a.svc.cluster.local:5000",
      imagePullSecret: "registry-login",
    });
    const env = platformSettingsEnv(settings);
    expect(env).toMatchObject({
      TRAINER_REGISTRY: "ghcr.io/acme",
      TRAINER_IMAGE_VERSION: "3f2c1d0",
      TRAINER_IMAGE_DIGESTS: `timm=sha256:${"b2".repeat(32)},ultralytics=sha256:${"a1".repeat(32)}`,
      TRAINER_IMAGE_PULL_SECRET: "registry-login",
    });
    expect(loadConfig({ ...env, DISPATCHER_API_TOKEN: "t" }, dir).platform).toEqual(settings);
    expect(loadConfig({ ...platformSettingsEnv(platformSettings()), DISPATCHER_API_TOKEN: "t" }, dir).platform).toEqual(platformSettings());
  });

  it("renders Jobs with the Secret, ConfigMap, retries and user the stack chose, which its admission policy allows", () => {
    const settings = platformSettings({
      objectStoreSecretName: "object-keys",
      backendConfigMapName: "backend-urls",
      backoffLimit: 0,
      ttlSecondsAfterFinished: 3600,
      terminationGracePeriodSeconds: 60,
      sharedMemorySize: "8Gi",
      runAsUser: 2000,
    });
    const env = platformSettingsEnv(settings);
    expect(env).toMatchObject({ OBJECT_STORE_SECRET: "object-keys", BACKEND_CONFIG_MAP: "backend-urls", JOB_BACKOFF_LIMIT: "0" });
    expect(loadConfig({ ...env, DISPATCHER_API_TOKEN: "t" }, dir).platform).toEqual(settings);
    // Defaults are not sent: the dispatcher's own defaults are the same.
    expect(Object.keys(platformSettingsEnv(platformSettings())).sort()).toEqual([
      "MLFLOW_TRACKING_URI",
      "TRAINER_IMAGE_VERSION",
      "TRAINER_REGISTRY",
      "TRAINING_NAMESPACE",
    ]);
    expect(problemsOf({ DISPATCHER_API_TOKEN: "t", TRAINER_RUN_AS_USER: "0", JOB_BACKOFF_LIMIT: "-1" })).toEqual([
      'JOB_BACKOFF_LIMIT="-1": must be a whole number',
      'TRAINER_RUN_AS_USER="0": must be a positive user id (trainers run as non-root)',
    ]);
  });

  it("refuses a pull secret that is no Secret name, and a digest for no framework or of no sha256", () => {
    const problems = problemsOf({
      DISPATCHER_API_TOKEN: "t",
      TRAINER_IMAGE_PULL_SECRET: "Registry Login",
      TRAINER_IMAGE_DIGESTS: "pytorch=sha256:00,timm=latest",
    });
    expect(problems).toEqual([
      "TRAINER_IMAGE_PULL_SECRET=\"Registry Login\": must be a Secret name (lower-case letters, digits, '-' and '.')",
      'TRAINER_IMAGE_DIGESTS: "pytorch=sha256:00" is not <framework>=sha256:<64 hex digits> (frameworks: ultralytics, timm, transformers)',
      'TRAINER_IMAGE_DIGESTS: "timm=latest" is not <framework>=sha256:<64 hex digits> (frameworks: ultralytics, timm, transformers)',
    ]);
  });

  it("uses in-cluster access inside a pod", () => {
    expect(loadConfig({ KUBERNETES_SERVICE_HOST: "10.0.0.1", DISPATCHER_API_TOKEN: "t" }, dir).cluster).toEqual({ kind: "in-cluster" });
  });

  it("reports every problem at once, one line each, naming the variable", () => {
    const problems = problemsOf({
      PORT: "http",
      DEFAULT_EXECUTOR: "aws",
      BODY_LIMIT_BYTES: "-1",
      BACKEND_API_URL: "ftp://backend",
      TRAINING_NAMESPACE: "Training_NS",
      KUBECONFIG: join(dir, "missing"),
    });
    expect(problems).toEqual([
      `KUBECONFIG: no file at ${join(dir, "missing")}`,
      'DEFAULT_EXECUTOR="aws": must be one of kubernetes, local',
      'DISPATCHER_API_TOKEN or DISPATCHER_API_TOKEN_FILE must be set: the token callers present as "Authorization: Bearer <token>"',
      'BACKEND_API_URL="ftp://backend": must be an http(s) URL',
      'TRAINING_NAMESPACE="Training_NS": must be a Kubernetes namespace name',
      'PORT="http": must be a port number 1..65535',
      'BODY_LIMIT_BYTES="-1": must be a positive whole number of bytes',
    ]);
  });

  it("reads the declared GPU pools' node sizes, and names a bad entry", () => {
    expect(loadConfig({ DISPATCHER_API_TOKEN: "t" }, dir).gpuNodeCapacity.size).toBe(0);
    const config = loadConfig({ DISPATCHER_API_TOKEN: "t", GPU_NODE_CAPACITY: "t4=1,a100=8" }, dir);
    expect([...config.gpuNodeCapacity]).toEqual([
      ["t4", 1],
      ["a100", 8],
    ]);
    expect(problemsOf({ DISPATCHER_API_TOKEN: "t", GPU_NODE_CAPACITY: "t4=1,a100" })).toEqual([
      'GPU_NODE_CAPACITY="t4=1,a100": "a100" is not <gpu-type>=<GPUs per node>, e.g. t4=1,a100=8',
    ]);
  });

  it("refuses the kubernetes executor without a cluster", () => {
    expect(problemsOf({ DISPATCHER_API_TOKEN: "t", DEFAULT_EXECUTOR: "kubernetes" })).toEqual([
      "DEFAULT_EXECUTOR=kubernetes needs a cluster: set KUBECONFIG or run in a pod",
    ]);
  });

  it("refuses the local executor inside a pod, whose image holds no trainer", () => {
    expect(problemsOf({ KUBERNETES_SERVICE_HOST: "10.0.0.1", DISPATCHER_API_TOKEN: "t", DEFAULT_EXECUTOR: "local" })).toEqual([
      "DEFAULT_EXECUTOR=local is not available in a pod: the dispatcher image holds no trainer",
    ]);
  });

  it("turns queueing on from TRAINING_QUEUEING, the variable the platform chart sets; off by default", () => {
    expect(loadConfig({ DISPATCHER_API_TOKEN: "t" }, dir).platform.queueing).toBe(false);
    expect(loadConfig({ DISPATCHER_API_TOKEN: "t", TRAINING_QUEUEING: "true" }, dir).platform.queueing).toBe(true);
    expect(loadConfig({ DISPATCHER_API_TOKEN: "t", TRAINING_QUEUEING: "false" }, dir).platform.queueing).toBe(false);
    expect(problemsOf({ DISPATCHER_API_TOKEN: "t", TRAINING_QUEUEING: "yes" })).toEqual([
      'TRAINING_QUEUEING="yes": must be true or false (the platform chart\'s queueing setting: Jobs queued by Kueue)',
    ]);
  });

  it("refuses a token given twice, or an empty one", () => {
    expect(problemsOf({ DISPATCHER_API_TOKEN: "t", DISPATCHER_API_TOKEN_FILE: tokenFile })).toEqual([
      "DISPATCHER_API_TOKEN and DISPATCHER_API_TOKEN_FILE are both set: set one",
    ]);
    expect(problemsOf({ DISPATCHER_API_TOKEN: " " })).toEqual(["DISPATCHER_API_TOKEN is empty"]);
  });

  it("never puts the token in its error text", () => {
    try {
      loadConfig({ DISPATCHER_API_TOKEN: "very-secret-value", PORT: "x" }, dir);
    } catch (error) {
      expect(String(error)).not.toContain("very-secret-value");
    }
    expect.assertions(1);
  });
});
