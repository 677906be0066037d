// The training request the live-status tests submit: a small timm job labelled with the test run (for
// clean-up) and the kwok-* labels that choose its pods' fate.
import type { TrainingRequestInput } from "../../charts-ts/request.ts";

export type Resources = TrainingRequestInput["resources"];

export function testRequest(
  jobId: number,
  run: { readonly id: string; readonly projectId: number },
  fate: Record<string, string> = {},
  resources: Resources = { gpu: 1 },
): TrainingRequestInput {
  return {
    jobId,
    projectId: run.projectId,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    resources,
    labels: { "test-run": run.id, ...fate },
  };
}
