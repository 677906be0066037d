import type { CoreV1Event, V1Job, V1Node } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { trainingRequest } from "../../charts-ts/request.ts";
import { renderTrainingJob } from "../../charts-ts/training-job-chart.ts";
import {
  autoscalerVerdict,
  capacityVerdict,
  formatGpuNodeCapacity,
  gpuDemandOf,
  largestGpuNodes,
  parseGpuNodeCapacity,
} from "../../dispatcher/status/node-fit.ts";

const none = new Map<string, number>();

function jobAsking(resources: { gpu: number; gpuType?: string }): V1Job {
  const request = trainingRequest({
    jobId: 5,
    projectId: 1,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    resources,
  });
  return renderTrainingJob(request) as V1Job;
}

function node(name: string, labels: Record<string, string>, gpus?: string): V1Node {
  return {
    metadata: { name, labels },
    status: { allocatable: { cpu: "8", ...(gpus !== undefined && { "nvidia.com/gpu": gpus }) } },
  };
}

function autoscalerEvent(reason: string, message: string, at: string, component = "cluster-autoscaler"): CoreV1Event {
  return {
    metadata: { name: `e-${at}` },
    involvedObject: { kind: "Pod", name: "training-job-5-abcde" },
    reason,
    message,
    source: { component },
    lastTimestamp: new Date(at),
  };
}

describe("parseGpuNodeCapacity", () => {
  it("reads gpu-type=GPUs pairs and writes them back in order", () => {
    const capacity = parseGpuNodeCapacity("t4=1, a100=8");
    expect([...capacity]).toEqual([
      ["t4", 1],
      ["a100", 8],
    ]);
    expect(formatGpuNodeCapacity(capacity)).toBe("a100=8,t4=1");
  });

  it.each([
    ["t4", '"t4" is not <gpu-type>=<GPUs per node>'],
    ["t4=0", '"t4=0" is not'],
    ["t4=1.5", '"t4=1.5" is not'],
    ["T4=1", '"T4=1" is not'],
    ["t4=1,,a100=8", '"" is not'],
    ["t4=1,t4=2", "gpu-type t4 is given twice"],
  ])("refuses %j, naming the entry", (text, message) => {
    expect(() => parseGpuNodeCapacity(text)).toThrow(message);
  });
});

describe("gpuDemandOf", () => {
  it("reads the GPUs and the gpu-type a TrainingJob's pods ask for", () => {
    expect(gpuDemandOf(jobAsking({ gpu: 2, gpuType: "a100" }))).toEqual({ gpus: 2, gpuType: "a100" });
    expect(gpuDemandOf(jobAsking({ gpu: 1 }))).toEqual({ gpus: 1 });
  });

  it("has no GPU demand for a CPU-only job", () => {
    expect(gpuDemandOf(jobAsking({ gpu: 0 }))).toBeUndefined();
  });
});

describe("largestGpuNodes", () => {
  it("keeps the largest node of each gpu-type and skips nodes whose GPUs are not registered yet", () => {
    const largest = largestGpuNodes([
      node("a", { "gpu-type": "t4" }, "1"),
      node("b", { "gpu-type": "t4" }, "4"),
      node("c", { "gpu-type": "a100" }, "0"),
      node("d", { "gpu-type": "l4" }),
      node("e", {}, "8"),
    ]);
    expect([...largest]).toEqual([["t4", 4]]);
  });
});

describe("capacityVerdict", () => {
  const declared = new Map([
    ["t4", 1],
    ["a100", 8],
  ]);

  it("fails a job larger than its type's largest pool, even with no node up (pools at zero)", () => {
    expect(capacityVerdict({ gpus: 2, gpuType: "t4" }, declared, none)).toBe("asks for 2 GPUs on one node; the largest t4 node has 1");
  });

  it("lets a job that fits wait, however busy the pool", () => {
    expect(capacityVerdict({ gpus: 1, gpuType: "t4" }, declared, none)).toBeUndefined();
    expect(capacityVerdict({ gpus: 8, gpuType: "a100" }, declared, none)).toBeUndefined();
  });

  it("counts a node larger than the declared pools (a pool added outside the stack)", () => {
    expect(capacityVerdict({ gpus: 4, gpuType: "t4" }, declared, new Map([["t4", 4]]))).toBeUndefined();
  });

  it("fails a gpu-type no declared pool or node has", () => {
    expect(capacityVerdict({ gpus: 1, gpuType: "h100" }, declared, none)).toBe("no GPU pool has type h100 (pools: t4, a100)");
  });

  it("judges a job without a gpu-type by the largest GPU node of any type", () => {
    expect(capacityVerdict({ gpus: 8 }, declared, none)).toBeUndefined();
    expect(capacityVerdict({ gpus: 2 }, new Map([["t4", 1]]), none)).toBe("asks for 2 GPUs on one node; the largest GPU node has 1");
  });

  it("judges by the nodes present when no pools are declared", () => {
    expect(capacityVerdict({ gpus: 2, gpuType: "t4" }, none, new Map([["t4", 1]]))).toBe(
      "asks for 2 GPUs on one node; the largest t4 node has 1",
    );
  });

  it("does not guess when nothing is known about the type", () => {
    expect(capacityVerdict({ gpus: 4, gpuType: "h100" }, none, new Map([["t4", 1]]))).toBeUndefined();
    expect(capacityVerdict({ gpus: 4 }, none, none)).toBeUndefined();
  });
});

describe("autoscalerVerdict", () => {
  const since = "2026-11-29T10:00:00Z";
  const never =
    "pod didn't trigger scale-up (it wouldn't fit if a new node is added): 2 Insufficient nvidia.com/gpu, 3 node(s) didn't match Pod's node affinity/selector";

  it("takes the autoscaler's word that no node group's new node would fit", () => {
    expect(autoscalerVerdict([autoscalerEvent("NotTriggerScaleUp", never, "2026-11-29T10:00:05Z")], since)).toBe(
      `cluster-autoscaler: ${never}`,
    );
  });

  it.each([
    ["a group at its maximum size", "1 max node group size reached, 1 Insufficient nvidia.com/gpu"],
    ["a group in backoff", "1 in backoff after failed scale-up"],
    ["no reasons at all", ""],
  ])("keeps waiting when a node group is only busy: %s", (_, reasons) => {
    const message = `pod didn't trigger scale-up (it wouldn't fit if a new node is added): ${reasons}`;
    expect(autoscalerVerdict([autoscalerEvent("NotTriggerScaleUp", message, "2026-11-29T10:00:05Z")], since)).toBeUndefined();
  });

  it("keeps waiting once a later scale-up was triggered", () => {
    const events = [
      autoscalerEvent("NotTriggerScaleUp", never, "2026-11-29T10:00:05Z"),
      autoscalerEvent("TriggeredScaleUp", "pod triggered scale-up: [{gpu-t4 0->1 (max: 4)}]", "2026-11-29T10:00:20Z"),
    ];
    expect(autoscalerVerdict(events, since)).toBeUndefined();
  });

  it("ignores verdicts from before the job was queued and events from anyone but the autoscaler", () => {
    expect(autoscalerVerdict([autoscalerEvent("NotTriggerScaleUp", never, "2026-11-29T09:59:00Z")], since)).toBeUndefined();
    expect(autoscalerVerdict([autoscalerEvent("NotTriggerScaleUp", never, "2026-11-29T10:00:05Z", "someone-else")], since)).toBeUndefined();
  });
});
