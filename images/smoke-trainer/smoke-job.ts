/**
 * A Job that runs the smoke trainer on a cluster, as YAML for `kubectl apply -f -`:
 *
 *   node images/smoke-trainer/smoke-job.ts --image ghcr.io/myorg/smoke-trainer:<sha> [--gpu-type t4] [--gpus 1] [--namespace training]
 *
 * It is the TrainingJob construct's Job (security context, read-only root, GPU request,
 * toleration and node selector, podFailurePolicy, volumes, env from the platform's Secret
 * and ConfigMap) with the smoke trainer's image, so it fails where a real training Job would.
 * Unlike a training Job it stays away from the backend: its `app` label is not the one the
 * dispatcher watches, and it gets no BACKEND_API_URL, so no status arrives for a job id the
 * backend does not know. (Being labelled apart, the trainer NetworkPolicy does not select it.)
 */
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { LABEL } from "../../charts-ts/labels.ts";
import { trainingRequest } from "../../charts-ts/request.ts";
import { TRAINER_ENV } from "../../charts-ts/trainer-contract.ts";
import { renderTrainingJob } from "../../charts-ts/training-job-chart.ts";

export const SMOKE_JOB_APP = "training-smoke-test";

export interface SmokeJobOptions {
  /** The smoke trainer image, e.g. ghcr.io/myorg/smoke-trainer:<commit sha>. */
  readonly image: string;
  /** GPUs to request; 0 runs on a CPU node and skips the GPU check. */
  readonly gpus: number;
  /** Node label value of the GPU pool to land on, e.g. t4. */
  readonly gpuType?: string;
  readonly namespace?: string;
}

interface SmokeJobManifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    template: {
      metadata: { labels: Record<string, string> };
      spec: { containers: [{ image: string; env: { name: string; value?: string }[] }] };
    };
  };
}

/** Five 2-second epochs: long enough to watch, and to test a stop with `kubectl delete`. */
export function smokeJob(options: SmokeJobOptions): SmokeJobManifest {
  const request = trainingRequest({
    // Unique per run, so a second smoke test does not collide with the first.
    jobId: Math.floor(Date.now() / 1000),
    framework: "timm",
    taskType: "image_classification",
    modelName: "smoke-trainer",
    dataset: { path: "smoke-test", format: "imagefolder" },
    epochs: 5,
    advancedConfig: { smoke: { epoch_seconds: 2 } },
    resources: { gpu: options.gpus, gpuType: options.gpuType, cpu: "1", memory: "2Gi", cpuRequest: "500m", memoryRequest: "1Gi" },
    maxRuntime: "30m",
  });
  const job = renderTrainingJob(request, { namespace: options.namespace }) as unknown as SmokeJobManifest;
  const [container] = job.spec.template.spec.containers;
  job.metadata.name = job.metadata.name.replace(/^training-job-/, "smoke-trainer-");
  job.metadata.labels[LABEL.app] = SMOKE_JOB_APP;
  job.spec.template.metadata.labels[LABEL.app] = SMOKE_JOB_APP;
  container.image = options.image;
  container.env = container.env.filter((variable) => variable.name !== TRAINER_ENV.backendUrl);
  // The image requires a GPU; a CPU-only smoke test says it does not.
  if (options.gpus === 0) container.env.push({ name: "SMOKE_REQUIRE_GPU", value: "0" });
  return job;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      image: { type: "string" },
      gpus: { type: "string", default: "1" },
      "gpu-type": { type: "string" },
      namespace: { type: "string" },
    },
  });
  if (!values.image) {
    console.error(
      "usage: node images/smoke-trainer/smoke-job.ts --image <registry>/smoke-trainer:<tag> [--gpus 1] [--gpu-type t4] [--namespace training]",
    );
    process.exit(2);
  }
  const job = smokeJob({ image: values.image, gpus: Number(values.gpus), gpuType: values["gpu-type"], namespace: values.namespace });
  process.stdout.write(stringify(job));
}
