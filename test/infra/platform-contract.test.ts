/**
 * What the infrastructure creates against what the manifests (charts-ts) expect:
 * Secret and ConfigMap keys, GPU node labels and taints, the dispatcher's Service.
 */
import { basename, dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { trainingRequest } from "../../charts-ts/request.ts";
import { SAMPLE_REQUESTS } from "../../charts-ts/samples.ts";
import { DEFAULT_PLATFORM_SETTINGS } from "../../charts-ts/settings.ts";
import { renderTrainingJob } from "../../charts-ts/training-job-chart.ts";
import { DISPATCHER_ENV } from "../../dispatcher/config.ts";
import { GPU_NODE_AFFINITY, GPU_TAINT, GPU_TOLERATION, gpuNodeLabels } from "../../infra/gpu-nodes.ts";
import { dispatcherManifest, renderPlatformChart } from "../../infra/platform/platform-manifests.ts";
import { BACKEND_CONFIG_KEYS, DISPATCHER_TOKEN_KEYS, OBJECT_STORE_KEYS } from "../../infra/platform/training-namespace.ts";

// biome-ignore lint/suspicious/noExplicitAny: structural walks over free-form manifests
type Json = any;

const jobs = Object.values(SAMPLE_REQUESTS).map((input) => renderTrainingJob(trainingRequest(input)) as Json);
const platformObjects = renderPlatformChart({}) as Json[];
const deployment = platformObjects.find((object) => object.kind === "Deployment");

/** Every `{ secretKeyRef | configMapKeyRef: { name, key } }` in an object. */
function keyRefs(value: Json, kind: "secretKeyRef" | "configMapKeyRef"): { name: string; key: string }[] {
  if (Array.isArray(value)) return value.flatMap((item) => keyRefs(item, kind));
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([field, inner]) =>
    field === kind ? [inner as { name: string; key: string }] : keyRefs(inner, kind),
  );
}

describe("Secrets and ConfigMaps", () => {
  it("hold every object-store key a TrainingJob reads", () => {
    const read = jobs
      .flatMap((job) => keyRefs(job, "secretKeyRef"))
      .filter((ref) => ref.name === DEFAULT_PLATFORM_SETTINGS.objectStoreSecretName);
    expect(read.length).toBeGreaterThan(0);
    expect(new Set(read.map((ref) => ref.key))).toEqual(new Set(Object.values(OBJECT_STORE_KEYS)));
  });

  it("hold every backend-config key the Jobs and the dispatcher read", () => {
    const read = [...jobs, deployment].flatMap((object) => keyRefs(object, "configMapKeyRef"));
    expect(read.length).toBeGreaterThan(0);
    for (const ref of read) {
      expect(ref.name).toBe(DEFAULT_PLATFORM_SETTINGS.backendConfigMapName);
      expect(Object.values(BACKEND_CONFIG_KEYS)).toContain(ref.key);
    }
  });

  it("hold the token files the dispatcher reads, in the Secret its Deployment mounts", () => {
    const container = deployment.spec.template.spec.containers[0];
    const fileOf = (name: string) => container.env.find((env: Json) => env.name === name).value as string;
    const files = [fileOf(DISPATCHER_ENV.apiTokenFile), fileOf(DISPATCHER_ENV.backendTokenFile)];
    expect(files.map((file) => basename(file)).sort()).toEqual(Object.values(DISPATCHER_TOKEN_KEYS).sort());
    const mount = container.volumeMounts.find((volumeMount: Json) => volumeMount.mountPath === dirname(files[0] as string));
    const volume = deployment.spec.template.spec.volumes.find((candidate: Json) => candidate.name === mount.name);
    expect(volume.secret.secretName).toBe(dispatcherManifest(platformObjects).tokenSecretName);
  });
});

describe("GPU nodes", () => {
  const gpuJobs = jobs.filter((job) => job.spec.template.spec.nodeSelector !== undefined);

  it("carry every label a GPU TrainingJob selects", () => {
    expect(gpuJobs.length).toBeGreaterThan(0);
    for (const job of gpuJobs) {
      const selector: Record<string, string> = job.spec.template.spec.nodeSelector;
      expect(gpuNodeLabels(selector["gpu-type"] ?? "any")).toMatchObject(selector);
    }
  });

  it("have a taint every GPU TrainingJob tolerates, and no other pod does", () => {
    for (const job of gpuJobs) {
      expect(job.spec.template.spec.tolerations).toContainEqual({ key: GPU_TAINT.key, operator: "Exists", effect: GPU_TAINT.effect });
    }
    for (const job of jobs.filter((candidate) => candidate.spec.template.spec.nodeSelector === undefined)) {
      expect(job.spec.template.spec.tolerations).toBeUndefined();
    }
  });

  it("are where GPU daemons schedule: their affinity admits a pool's labels and they tolerate its taint", () => {
    const labels = gpuNodeLabels("l4");
    const terms = GPU_NODE_AFFINITY.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    const admitted = terms.some((term) =>
      term.matchExpressions.every((expression) => (expression.values as readonly string[]).includes(labels[expression.key] ?? "")),
    );
    expect(admitted).toBe(true);
    expect(GPU_TOLERATION).toEqual({ key: GPU_TAINT.key, operator: "Exists", effect: GPU_TAINT.effect });
  });
});

describe("the dispatcher's Service", () => {
  it("is found in the platform chart with its labels and named port", () => {
    expect(dispatcherManifest(platformObjects).service).toEqual({
      name: "training-dispatcher",
      namespace: "training",
      labels: { "app.kubernetes.io/name": "training-dispatcher", "app.kubernetes.io/part-of": "training-platform" },
      portName: "http",
    });
  });
});
