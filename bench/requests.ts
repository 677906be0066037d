/** Training requests the benchmark submits, and the manifests the dispatcher would render for them. */
import type { KubeConfig, V1Job } from "@kubernetes/client-node";
import { BatchV1Api } from "@kubernetes/client-node";
import { parseTrainingRequest, type TrainingRequestInput } from "../charts-ts/request.ts";
import { platformSettings } from "../charts-ts/settings.ts";
import { type Manifest, renderTrainingJob } from "../charts-ts/training-job-chart.ts";

/** Every bench job carries this project id and a `bench-run` label, so filters and clean-up find them. */
export const BENCH_PROJECT_ID = 4242;
export const RUN_ID = `b${Date.now().toString(36)}`;

let lastJobId = (Date.now() % 100_000) * 100_000;
export function nextJobId(): number {
  lastJobId += 1;
  return lastJobId;
}

/**
 * A CPU-only request (gpu 0, tiny requests) so pods, where a phase lets them exist,
 * fit on the one fake CPU node by the hundred and never touch the GPU quota.
 */
export function benchRequest(jobId: number, labels: Record<string, string> = {}): TrainingRequestInput {
  return {
    jobId,
    projectId: BENCH_PROJECT_ID,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/bench", format: "imagefolder" },
    epochs: 1,
    resources: { gpu: 0, cpu: "100m", memory: "64Mi", cpuRequest: "10m", memoryRequest: "16Mi" },
    labels: { "bench-run": RUN_ID, ...labels },
  };
}

/** The Job the dispatcher renders for a request in `namespace`: the same chart code. */
export function benchManifest(input: TrainingRequestInput, namespace: string, options: { suspend?: boolean } = {}): Manifest {
  const parsed = parseTrainingRequest(input);
  if (!parsed.ok) throw new Error(`the bench request is invalid: ${parsed.errors.map((error) => error.message).join("; ")}`);
  const manifest = renderTrainingJob(parsed.request, platformSettings({ namespace }));
  if (!options.suspend) return manifest;
  return { ...manifest, spec: { ...(manifest.spec as Record<string, unknown>), suspend: true } };
}

/** A bare client-node create, as the dispatcher's executor does it (strict field validation). */
export function bareCreator(kubeConfig: KubeConfig, namespace: string): (manifest: Manifest) => Promise<V1Job> {
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  return (manifest) => batch.createNamespacedJob({ namespace, body: manifest as V1Job, fieldValidation: "Strict" });
}

/**
 * For filling namespaces by the thousand: renders the chart once with a sentinel job id and
 * substitutes each id into that JSON (a chart render costs milliseconds of CPU the API server
 * needs more). Checked once against a real render, so the Jobs are exactly what the chart makes.
 */
export function manifestFactory(namespace: string, options: { suspend?: boolean } = {}): (jobId: number) => Manifest {
  const sentinel = 987_654_321_012;
  const template = JSON.stringify(benchManifest(benchRequest(sentinel), namespace, options));
  const make = (jobId: number) => JSON.parse(template.replaceAll(String(sentinel), String(jobId))) as Manifest;
  const probe = nextJobId();
  if (JSON.stringify(make(probe)) !== JSON.stringify(benchManifest(benchRequest(probe), namespace, options)))
    throw new Error("substituting the job id into a rendered manifest does not reproduce the chart's rendering");
  return make;
}
