// Every object `cdk8s synth` writes to dist/ is accepted by a real API server:
// schema, field validation, Pod Security "restricted" admission, quota, priority classes.
import { readdirSync } from "node:fs";
import { KubeConfig } from "@kubernetes/client-node";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { applyObjects, applyPlatform, DIST_DIR, distObjects } from "./platform.ts";

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(inject("kubeconfig"));

beforeAll(() => applyPlatform(kubeConfig));

describe("dist/ against the API server", () => {
  const files = readdirSync(DIST_DIR).filter((file) => file.endsWith(".k8s.yaml"));

  it("has the platform chart and the sample TrainingJobs", () => {
    expect(files).toContain("platform.k8s.yaml");
    expect(files.length).toBeGreaterThanOrEqual(6);
  });

  it.each(files)("%s: every object passes a server-side dry run", async (file) => {
    const objects = distObjects(file);
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) {
      await expect(applyObjects(kubeConfig, [object], true), `${object.kind}/${object.metadata?.name}`).resolves.toBeUndefined();
    }
  });
});
