import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { canonicalJson } from "../../charts-ts/canonical-json.ts";
import { QUEUE_NAME_LABEL, WORKLOAD_PRIORITY_CLASS_LABEL } from "../../charts-ts/kueue-contract.ts";
import { ANNOTATION } from "../../charts-ts/labels.ts";
import { type TrainingRequestInput, trainingRequest } from "../../charts-ts/request.ts";
import { PLAN_FULL_EXAMPLE, SAMPLE_REQUESTS } from "../../charts-ts/samples.ts";
import { renderTrainingJob } from "../../charts-ts/training-job-chart.ts";

// The rendered Job, loosely typed: these tests read it the way a reviewer reads YAML.
// biome-ignore lint/suspicious/noExplicitAny: structural assertions on free-form JSON
type Json = any;

const render = (input: TrainingRequestInput, platform?: Parameters<typeof renderTrainingJob>[1]): Json =>
  renderTrainingJob(trainingRequest(input), platform);

const podSpec = (job: Json) => job.spec.template.spec;
const trainer = (job: Json) => podSpec(job).containers[0];
const envNamed = (job: Json, name: string) => trainer(job).env.find((env: Json) => env.name === name);
const cpuOnly = SAMPLE_REQUESTS["sample-cpu-only"] as TrainingRequestInput;

describe("the plan's Full Example", () => {
  const plan: Json = parse(readFileSync(new URL("../fixtures/plan-full-example.yaml", import.meta.url), "utf8"));
  const ours = render(PLAN_FULL_EXAMPLE);
  const planTrainer = plan.spec.template.spec.containers[0];

  it("has the plan's identity, labels and lifecycle", () => {
    expect(ours.apiVersion).toBe(plan.apiVersion);
    expect(ours.kind).toBe(plan.kind);
    expect(ours.metadata.name).toBe(plan.metadata.name);
    expect(ours.metadata.namespace).toBe(plan.metadata.namespace);
    expect(ours.metadata.labels).toMatchObject(plan.metadata.labels);
    expect(ours.spec.template.metadata.labels).toMatchObject(plan.spec.template.metadata.labels);
    for (const field of ["ttlSecondsAfterFinished", "backoffLimit", "activeDeadlineSeconds"]) {
      expect(ours.spec[field], field).toBe(plan.spec[field]);
    }
    expect(podSpec(ours).restartPolicy).toBe("Never");
  });

  it("runs the same image, command and train.py arguments", () => {
    expect(trainer(ours).name).toBe(planTrainer.name);
    expect(trainer(ours).image).toBe(planTrainer.image);
    expect(trainer(ours).imagePullPolicy).toBe(planTrainer.imagePullPolicy);
    expect(trainer(ours).command).toEqual(planTrainer.command);
    const isConfig = (arg: string) => arg.startsWith("--advanced_config=");
    expect(trainer(ours).args.filter((arg: string) => !isConfig(arg))).toEqual(planTrainer.args.filter((arg: string) => !isConfig(arg)));
    const config = (args: string[]) => JSON.parse((args.find(isConfig) ?? "").slice("--advanced_config=".length));
    expect(config(trainer(ours).args)).toEqual(config(planTrainer.args));
  });

  it("passes the plan's environment, except a pinned CUDA_VISIBLE_DEVICES", () => {
    // The device plugin exposes exactly the allocated GPUs; pinning "0" would hide all but one of a multi-GPU request.
    const planEnv = planTrainer.env.filter((env: Json) => env.name !== "CUDA_VISIBLE_DEVICES");
    expect(trainer(ours).env).toEqual(expect.arrayContaining(planEnv));
    expect(envNamed(ours, "CUDA_VISIBLE_DEVICES")).toBeUndefined();
  });

  it("asks for the same resources, placement and volumes", () => {
    expect(trainer(ours).resources).toEqual(planTrainer.resources);
    expect(podSpec(ours).nodeSelector).toEqual(plan.spec.template.spec.nodeSelector);
    expect(podSpec(ours).tolerations).toEqual(plan.spec.template.spec.tolerations);
    expect(podSpec(ours).volumes).toEqual(expect.arrayContaining(plan.spec.template.spec.volumes));
    expect(trainer(ours).volumeMounts).toEqual(expect.arrayContaining(planTrainer.volumeMounts));
  });
});

describe("TrainingJob", () => {
  const job = render(PLAN_FULL_EXAMPLE);

  it("names the Job after the jobId, within DNS-1123 limits", () => {
    const big = render({ ...PLAN_FULL_EXAMPLE, jobId: Number.MAX_SAFE_INTEGER });
    expect(big.metadata.name).toBe(`training-job-${Number.MAX_SAFE_INTEGER}`);
    expect(big.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(big.metadata.name.length).toBeLessThanOrEqual(63);
  });

  it("fails fast on configuration exit codes and does not count disruptions", () => {
    expect(job.spec.podFailurePolicy.rules).toEqual([
      { action: "FailJob", onExitCodes: { containerName: "trainer", operator: "In", values: [2, 3] } },
      { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
    ]);
    expect(job.spec.podReplacementPolicy).toBe("Failed");
  });

  it("runs non-root with no privilege escalation, no capabilities and a read-only root", () => {
    expect(podSpec(job).securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      fsGroup: 1000,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(trainer(job).securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    const mounts = trainer(job).volumeMounts.map((mount: Json) => mount.mountPath);
    expect(mounts).toEqual(expect.arrayContaining(["/workspace", "/tmp", "/dev/shm"]));
    expect(podSpec(job).automountServiceAccountToken).toBe(false);
  });

  it("gives a stopped or preempted trainer time to checkpoint", () => {
    expect(podSpec(job).terminationGracePeriodSeconds).toBe(300);
    expect(envNamed(job, "CHECKPOINT_DIR")).toEqual({ name: "CHECKPOINT_DIR", value: "/workspace/output/checkpoints" });
    expect(envNamed(job, "RESUME_FROM")).toBeUndefined();
    const resumed = render(SAMPLE_REQUESTS["sample-timm"] as TrainingRequestInput);
    expect(envNamed(resumed, "RESUME_FROM").value).toBe("r2://vision-platform-prod/checkpoints/projects/7/jobs/1002/last.pt");
  });

  it("maps priority and maxRuntime", () => {
    const high = render({ ...PLAN_FULL_EXAMPLE, priority: "high", maxRuntime: "1h30m" });
    expect(podSpec(high).priorityClassName).toBe("training-high");
    expect(high.spec.activeDeadlineSeconds).toBe(5400);
    expect(podSpec(job).priorityClassName).toBe("training-default");
  });

  it("puts cost labels on the Job and its pods, under the platform's own", () => {
    const labelled = render({ ...PLAN_FULL_EXAMPLE, labels: { team: "vision", "cost-center": "cc-9" } });
    for (const labels of [labelled.metadata.labels, labelled.spec.template.metadata.labels]) {
      expect(labels).toEqual({
        app: "training-job",
        "job-id": "123",
        framework: "ultralytics",
        "project-id": "5",
        priority: "default",
        team: "vision",
        "cost-center": "cc-9",
      });
    }
  });

  it("omits project-id and the project flag when there is no project", () => {
    const { projectId: _projectId, ...withoutProject } = PLAN_FULL_EXAMPLE;
    const unowned = render(withoutProject);
    expect(unowned.metadata.labels["project-id"]).toBeUndefined();
    expect(trainer(unowned).args.some((arg: string) => arg.startsWith("--project_id"))).toBe(false);
  });

  it("records the normalized request so a resubmission can be compared", () => {
    const annotation = job.metadata.annotations[ANNOTATION.request];
    expect(annotation).toBe(canonicalJson(trainingRequest(PLAN_FULL_EXAMPLE)));
    expect(JSON.parse(annotation).resources.memory).toBe("16Gi");
  });

  it("omits --pretrained when pretrained is false", () => {
    expect(trainer(job).args).toContain("--pretrained");
    expect(trainer(render({ ...PLAN_FULL_EXAMPLE, pretrained: false })).args).not.toContain("--pretrained");
  });

  it("keeps a hostile-looking advancedConfig inside one argument", () => {
    const advancedConfig = { note: "a b\n--epochs=1 $(reboot) 'quoted' \"double\"" };
    const args = trainer(render({ ...PLAN_FULL_EXAMPLE, advancedConfig })).args as string[];
    expect(args.filter((arg) => arg.startsWith("--epochs="))).toEqual(["--epochs=50"]);
    expect(JSON.parse(args.at(-1)?.slice("--advanced_config=".length) ?? "")).toEqual(advancedConfig);
  });

  it("takes registry, version, namespace and names from platform settings", () => {
    const custom = render(PLAN_FULL_EXAMPLE, {
      registry: "registry.example.com/ml",
      trainerImageVersion: "v2.3.1",
      namespace: "training-staging",
      objectStoreSecretName: "object-store",
      backendConfigMapName: "backend",
      mlflowTrackingUri: "http://mlflow:5000",
      backoffLimit: 1,
    });
    expect(trainer(custom).image).toBe("registry.example.com/ml/trainer-ultralytics:v2.3.1");
    expect(custom.metadata.namespace).toBe("training-staging");
    expect(custom.spec.backoffLimit).toBe(1);
    expect(envNamed(custom, "AWS_SECRET_ACCESS_KEY").valueFrom.secretKeyRef.name).toBe("object-store");
    expect(envNamed(custom, "BACKEND_API_URL").valueFrom.configMapKeyRef.name).toBe("backend");
    expect(envNamed(custom, "MLFLOW_TRACKING_URI").value).toBe("http://mlflow:5000");
  });

  it("names exactly one build of its framework's image when the platform pins that framework's digest", () => {
    const digest = `sha256:${"ab".repeat(32)}`;
    const pinned = { trainerImageVersion: "3f2c1d0", trainerImageDigests: { ultralytics: digest } };
    expect(trainer(render(PLAN_FULL_EXAMPLE, pinned)).image).toBe(`ghcr.io/myorg/trainer-ultralytics:3f2c1d0@${digest}`);
    expect(trainer(render(cpuOnly, pinned)).image).toBe(`ghcr.io/myorg/trainer-${cpuOnly.framework}:3f2c1d0`);
  });

  it("pulls its image with the platform's pull secret when there is one, and with none by default", () => {
    expect(podSpec(job).imagePullSecrets).toBeUndefined();
    expect(podSpec(render(PLAN_FULL_EXAMPLE, { imagePullSecret: "registry-login" })).imagePullSecrets).toEqual([
      { name: "registry-login" },
    ]);
  });

  it("reads credentials only by reference", () => {
    for (const name of ["AWS_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]) {
      expect(envNamed(job, name).value).toBeUndefined();
      expect(envNamed(job, name).valueFrom.secretKeyRef.name).toBe("r2-credentials");
    }
  });

  it("gives a multi-GPU request that many GPUs and no selector for an unnamed type", () => {
    const { gpuType: _gpuType, ...anyType } = { ...PLAN_FULL_EXAMPLE.resources, gpu: 4 };
    const multi = render({ ...PLAN_FULL_EXAMPLE, resources: anyType });
    expect(trainer(multi).resources.limits["nvidia.com/gpu"]).toBe(4);
    expect(trainer(multi).resources.requests["nvidia.com/gpu"]).toBe(4);
    expect(podSpec(multi).nodeSelector).toEqual({ accelerator: "nvidia-gpu" });
  });
});

describe("a CPU-only TrainingJob", () => {
  const job = render(cpuOnly);

  it("asks for no GPU and stays off GPU nodes", () => {
    expect(trainer(job).resources).toEqual({
      limits: { cpu: "2", memory: "4Gi" },
      requests: { cpu: "1", memory: "2Gi" },
    });
    expect(podSpec(job).nodeSelector).toBeUndefined();
    expect(podSpec(job).tolerations).toBeUndefined();
  });
});

describe("TrainingJob with queueing (Kueue)", () => {
  const request = { ...PLAN_FULL_EXAMPLE, projectId: 5, priority: "high" } as TrainingRequestInput;

  it("queues the Job in its project's LocalQueue at its WorkloadPriorityClass, created suspended for Kueue to admit", () => {
    const job = render(request, { queueing: true });
    expect(job.metadata.labels).toMatchObject({
      [QUEUE_NAME_LABEL]: "project-5",
      [WORKLOAD_PRIORITY_CLASS_LABEL]: "training-high",
    });
    expect(job.spec.suspend).toBe(true);
    // The pods exist only once Kueue has admitted the Job: they carry no queue labels.
    expect(Object.keys(job.spec.template.metadata.labels)).not.toContain(QUEUE_NAME_LABEL);
  });

  it("renders exactly today's Job with queueing off: no queue labels, no suspend", () => {
    const off = render(request, { queueing: false });
    expect(off).toEqual(render(request));
    expect(Object.keys(off.metadata.labels).filter((key) => key.startsWith("kueue.x-k8s.io/"))).toEqual([]);
    expect(off.spec).not.toHaveProperty("suspend");
  });

  it("refuses a request without projectId while queueing is on, naming the field", () => {
    expect(() => render({ ...request, projectId: undefined }, { queueing: true })).toThrow(/^projectId: required while queueing is on/);
  });
});
