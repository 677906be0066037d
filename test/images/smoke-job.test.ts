// The smoke test Job for a new cluster: the TrainingJob construct's Job, running the smoke trainer.
import { execFileSync } from "node:child_process";
import { describe, expect, test } from "vitest";
import { parse } from "yaml";
import { LABEL, TRAINING_JOB_APP } from "../../charts-ts/labels.ts";
import { DEFAULT_PLATFORM_SETTINGS } from "../../charts-ts/settings.ts";
import { TRAINER_COMMAND, TRAINER_ENV } from "../../charts-ts/trainer-contract.ts";
import { GPU_RESOURCE } from "../../charts-ts/training-job.ts";
import { SMOKE_JOB_APP, smokeJob } from "../../images/smoke-trainer/smoke-job.ts";

// biome-ignore lint/suspicious/noExplicitAny: structural reads of a rendered manifest
type Json = any;

const IMAGE = "ghcr.io/myorg/smoke-trainer:0123abc";

describe("smokeJob", () => {
  const job: Json = smokeJob({ image: IMAGE, gpus: 1, gpuType: "t4" });
  const pod = job.spec.template.spec;
  const [container] = pod.containers;
  const env = (name: string) => container.env.find((variable: Json) => variable.name === name);

  test("runs the smoke trainer image with the trainer command", () => {
    expect(container.image).toBe(IMAGE);
    expect(container.command).toEqual(TRAINER_COMMAND);
    expect(container.args).toContain('--advanced_config={"smoke":{"epoch_seconds":2}}');
  });

  test("asks for a GPU on the requested pool, like a training Job", () => {
    expect(container.resources.limits[GPU_RESOURCE]).toBe(1);
    expect(pod.nodeSelector["gpu-type"]).toBe("t4");
    expect(pod.tolerations).toContainEqual({ key: GPU_RESOURCE, operator: "Exists", effect: "NoSchedule" });
    expect(pod.securityContext.runAsUser).toBe(DEFAULT_PLATFORM_SETTINGS.runAsUser);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
  });

  test("stays away from the dispatcher and the backend", () => {
    expect(job.metadata.name).toMatch(/^smoke-trainer-\d+$/);
    expect(job.metadata.labels[LABEL.app]).toBe(SMOKE_JOB_APP);
    expect(job.spec.template.metadata.labels[LABEL.app]).toBe(SMOKE_JOB_APP);
    expect(SMOKE_JOB_APP).not.toBe(TRAINING_JOB_APP);
    expect(env(TRAINER_ENV.backendUrl)).toBeUndefined();
  });

  test("without GPUs, lands on any node and tells the trainer not to require one", () => {
    const cpuJob: Json = smokeJob({ image: IMAGE, gpus: 0 });
    const [cpuContainer] = cpuJob.spec.template.spec.containers;
    expect(cpuContainer.resources.limits[GPU_RESOURCE]).toBeUndefined();
    expect(cpuJob.spec.template.spec.nodeSelector).toBeUndefined();
    expect(cpuContainer.env).toContainEqual({ name: "SMOKE_REQUIRE_GPU", value: "0" });
    expect(env("SMOKE_REQUIRE_GPU")).toBeUndefined();
  });

  test("refuses what a training request refuses", () => {
    expect(() => smokeJob({ image: IMAGE, gpus: 0, gpuType: "t4" })).toThrow("gpuType needs gpu of at least 1");
  });
});

test("the command line prints the Job as YAML for kubectl apply", () => {
  const run = (...args: string[]) =>
    execFileSync(process.execPath, ["images/smoke-trainer/smoke-job.ts", ...args], { encoding: "utf8", stdio: "pipe" });
  const job = parse(run("--image", IMAGE, "--gpu-type", "a100", "--namespace", "gpu-smoke"));
  expect(job).toMatchObject({ apiVersion: "batch/v1", kind: "Job", metadata: { namespace: "gpu-smoke" } });
  expect(job.spec.template.spec.nodeSelector["gpu-type"]).toBe("a100");
  expect(() => run()).toThrow(/usage:/);
});
