import { describe, expect, it } from "vitest";
import { FRAMEWORK_CATALOGUE, FRAMEWORKS } from "../../charts-ts/catalogue.ts";
import { durationSeconds, InvalidTrainingRequestError, parseTrainingRequest, trainingRequest } from "../../charts-ts/request.ts";
import { PLAN_FULL_EXAMPLE } from "../../charts-ts/samples.ts";

const minimal = {
  jobId: 42,
  framework: "ultralytics",
  taskType: "object_detection",
  modelName: "yolo11n",
  dataset: { path: "abc123", format: "yolo" },
};

const withResources = (resources: Record<string, unknown>) => ({ ...minimal, resources });

describe("training request defaults", () => {
  it("fills the plan's defaults", () => {
    const request = trainingRequest(minimal as never);
    expect(request).toMatchObject({
      epochs: 50,
      batchSize: 32,
      learningRate: 0.001,
      optimizer: "adam",
      pretrained: true,
      priority: "default",
      maxRuntime: "24h",
      labels: {},
      resources: { gpu: 1, cpu: "4", memory: "16Gi", cpuRequest: "2", memoryRequest: "8Gi" },
    });
    expect(request.advancedConfig).toBeUndefined();
    expect(request.executor).toBeUndefined();
  });

  it.each(FRAMEWORKS)("takes %s's default resources from the catalogue", (framework) => {
    const entry = FRAMEWORK_CATALOGUE[framework];
    const request = trainingRequest({
      jobId: 1,
      framework,
      taskType: entry.taskTypes[0],
      modelName: "m",
      dataset: { path: "d", format: entry.datasetFormats[0] },
    } as never);
    expect(request.resources).toEqual(entry.defaultResources);
  });

  it("keeps resources given in part and defaults the rest", () => {
    const request = trainingRequest(withResources({ gpu: 0, cpu: 8 }) as never);
    expect(request.resources).toEqual({ gpu: 0, cpu: "8", memory: "16Gi", cpuRequest: "2", memoryRequest: "8Gi" });
  });

  it("accepts the plan's full example unchanged", () => {
    const request = trainingRequest(PLAN_FULL_EXAMPLE);
    expect(request.advancedConfig).toEqual(PLAN_FULL_EXAMPLE.advancedConfig);
    expect(request.resources.gpuType).toBe("t4");
  });

  it("reads durations", () => {
    expect(durationSeconds("24h")).toBe(86_400);
    expect(durationSeconds("1h30m")).toBe(5_400);
    expect(durationSeconds("90s")).toBe(90);
    expect(durationSeconds("")).toBeUndefined();
    expect(durationSeconds("1d")).toBeUndefined();
  });
});

const oversizeConfig = { blob: "x".repeat(64 * 1024) };

// Each bad request, the field the error must name, and a fragment of its message.
const badRequests: [string, unknown, string, string][] = [
  ["not an object", "train please", "", "JSON object"],
  ["an array", [minimal], "", "JSON object"],
  ["unknown framework", { ...minimal, framework: "pytorch" }, "framework", "ultralytics, timm, transformers"],
  ["missing framework", { ...minimal, framework: undefined }, "framework", "must be one of"],
  ["task type the framework lacks", { ...minimal, taskType: "semantic_segmentation" }, "taskType", "for ultralytics"],
  ["dataset format the framework lacks", { ...minimal, dataset: { path: "d", format: "imagefolder" } }, "dataset.format", "yolo, coco"],
  ["zero epochs", { ...minimal, epochs: 0 }, "epochs", "positive"],
  ["fractional epochs", { ...minimal, epochs: 2.5 }, "epochs", "integer"],
  ["negative batch size", { ...minimal, batchSize: -8 }, "batchSize", "positive"],
  ["batch size as text", { ...minimal, batchSize: "32" }, "batchSize", "number"],
  ["zero learning rate", { ...minimal, learningRate: 0 }, "learningRate", "above 0"],
  ["learning rate above 1", { ...minimal, learningRate: 1.5 }, "learningRate", "at most 1"],
  ["fractional GPU count", withResources({ gpu: 0.5 }), "resources.gpu", "integer"],
  ["negative GPU count", withResources({ gpu: -1 }), "resources.gpu", "at least 0"],
  ["nine GPUs", withResources({ gpu: 9 }), "resources.gpu", "at most 8"],
  ["cpu that is not a quantity", withResources({ cpu: "four" }), "resources.cpu", "Kubernetes quantity"],
  ["memory that is not a quantity", withResources({ memory: "16 GB" }), "resources.memory", "Kubernetes quantity"],
  ["zero memory", withResources({ memory: "0" }), "resources.memory", "positive"],
  ["cpu request above limit", withResources({ cpu: "2", cpuRequest: "3" }), "resources.cpuRequest", "above the cpu limit"],
  [
    "memory request above limit",
    withResources({ memory: "8Gi", memoryRequest: "9000Mi" }),
    "resources.memoryRequest",
    "above the memory limit",
  ],
  ["gpu type without a GPU", withResources({ gpu: 0, gpuType: "t4" }), "resources.gpuType", "gpu of at least 1"],
  ["gpu type with a space", withResources({ gpuType: "tesla t4" }), "resources.gpuType", "label value"],
  ["unknown resource", withResources({ tpu: 1 }), "resources.tpu", "unknown field"],
  ["jobId zero", { ...minimal, jobId: 0 }, "jobId", "positive"],
  ["jobId as text", { ...minimal, jobId: "123" }, "jobId", "number"],
  ["jobId fractional", { ...minimal, jobId: 1.5 }, "jobId", "integer"],
  ["jobId beyond safe integers", { ...minimal, jobId: 2 ** 60 }, "jobId", "integer"],
  ["missing jobId", { ...minimal, jobId: undefined }, "jobId", "required"],
  ["modelName starting with a dash", { ...minimal, modelName: "--epochs=1" }, "modelName", "letters, digits"],
  ["modelName with a space", { ...minimal, modelName: "yolo11n --evil" }, "modelName", "letters, digits"],
  ["modelName with a newline", { ...minimal, modelName: "yolo\nx" }, "modelName", "letters, digits"],
  ["modelName with shell syntax", { ...minimal, modelName: "$(rm -rf /)" }, "modelName", "letters, digits"],
  ["modelName with quotes", { ...minimal, modelName: 'a"b' }, "modelName", "letters, digits"],
  ["empty modelName", { ...minimal, modelName: "" }, "modelName", "empty"],
  ["dataset path escaping upwards", { ...minimal, dataset: { path: "data/../../etc", format: "yolo" } }, "dataset.path", "'..'"],
  ["absolute dataset path", { ...minimal, dataset: { path: "/etc/passwd", format: "yolo" } }, "dataset.path", "must not start"],
  ["dataset path with a semicolon", { ...minimal, dataset: { path: "a;b", format: "yolo" } }, "dataset.path", "letters, digits"],
  ["advancedConfig as an array", { ...minimal, advancedConfig: [1, 2] }, "advancedConfig", "JSON object"],
  ["advancedConfig as a string", { ...minimal, advancedConfig: '{"a":1}' }, "advancedConfig", "JSON object"],
  ["advancedConfig over 64 KiB", { ...minimal, advancedConfig: oversizeConfig }, "advancedConfig", "64 KiB"],
  ["unknown top-level field", { ...minimal, gpus: 2 }, "gpus", "unknown field"],
  ["unknown dataset field", { ...minimal, dataset: { path: "d", format: "yolo", url: "x" } }, "dataset.url", "unknown field"],
  ["unknown priority", { ...minimal, priority: "urgent" }, "priority", "high, default, low"],
  ["unknown executor", { ...minimal, executor: "aws" }, "executor", "kubernetes, local"],
  ["maxRuntime of zero", { ...minimal, maxRuntime: "0s" }, "maxRuntime", "above 0"],
  ["maxRuntime over a week", { ...minimal, maxRuntime: "200h" }, "maxRuntime", "at most 168h"],
  ["maxRuntime in days", { ...minimal, maxRuntime: "2d" }, "maxRuntime", "duration"],
  ["label owned by the platform", { ...minimal, labels: { "job-id": "7" } }, "labels.job-id", "set by the platform"],
  ["label with a reserved prefix", { ...minimal, labels: { "kubernetes.io/team": "a" } }, "labels.kubernetes.io/team", "reserved"],
  [
    "label choosing its own Kueue queue",
    { ...minimal, labels: { "kueue.x-k8s.io/queue-name": "project-1" } },
    "labels.kueue.x-k8s.io/queue-name",
    "reserved",
  ],
  ["label value with a space", { ...minimal, labels: { team: "a b" } }, "labels.team", "label values"],
  ...[
    // The dispatcher's own pod labels: a trainer carrying them would count in its PodDisruptionBudget.
    "app.kubernetes.io/name",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/team",
    "node-role.kubernetes.io/worker",
    "batch.kubernetes.io/job-name",
    "kubernetes.io/team",
    "k8s.io/team",
    "cluster-autoscaler.k8s.io/safe-to-evict",
    "training-platform.io/team",
    "sub.training-platform.io/team",
  ].map((key): [string, unknown, string, string] => [
    `reserved label key ${key}`,
    { ...minimal, labels: { [key]: "training-dispatcher" } },
    `labels.${key}`,
    "reserved",
  ]),
  ["optimizer with a flag in it", { ...minimal, optimizer: "adam --lr=9" }, "optimizer", "lower-case name"],
  ["resumeFrom that is not a checkpoint URI", { ...minimal, resumeFrom: "http://evil/x" }, "resumeFrom", "checkpoint URI"],
  ...[
    "r2://bucket/checkpoints/../other-project/last.pt",
    "r2://bucket/checkpoints/jobs/..",
    "s3://bucket/a/./last.pt",
    "gs://bucket/a//last.pt",
    "r2://bucket/checkpoints/",
  ].map((uri): [string, unknown, string, string] => [`resumeFrom ${uri}`, { ...minimal, resumeFrom: uri }, "resumeFrom", "segment"]),
  [
    "resumeFrom with a '..' segment",
    { ...minimal, resumeFrom: "r2://bucket/checkpoints/../../other-project/last.pt" },
    "resumeFrom",
    "'..' segment",
  ],
];

describe("bad training requests", () => {
  it.each(badRequests)("rejects %s", (_name, input, field, message) => {
    const result = parseTrainingRequest(input);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((error) => error.field)).toContain(field);
    expect(result.errors.find((error) => error.field === field)?.message).toContain(message);
  });

  it("throws an error that names every field at once", () => {
    expect(() => trainingRequest({ ...minimal, epochs: 0, batchSize: 0 } as never)).toThrowError(InvalidTrainingRequestError);
    expect(() => trainingRequest({ ...minimal, epochs: 0, batchSize: 0 } as never)).toThrowError(/epochs: .*; batchSize: /);
  });

  it("accepts label keys that only look like reserved ones, and dots inside a checkpoint's names", () => {
    const labels = { "example.com/team": "a", "notkubernetes.io/team": "b", "kubernetes.io.example.com/team": "c", "k8s-team": "d" };
    expect(parseTrainingRequest({ ...minimal, labels }).ok).toBe(true);
    expect(parseTrainingRequest({ ...minimal, resumeFrom: "r2://bucket/runs/v1..v2/last.pt" }).ok).toBe(true);
  });

  it("accepts exactly 64 KiB of advancedConfig", () => {
    const fits = { blob: "x".repeat(64 * 1024 - '{"blob":""}'.length) };
    expect(parseTrainingRequest({ ...minimal, advancedConfig: fits }).ok).toBe(true);
  });
});
