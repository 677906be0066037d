import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as models from "kubernetes-models";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { platformApp } from "../../charts-ts/app.ts";

const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

/** Runs the same app `cdk8s synth` runs, into a scratch folder; returns file name -> YAML. */
function synth(): Map<string, string> {
  const outdir = mkdtempSync(join(tmpdir(), "synth-"));
  outdirs.push(outdir);
  platformApp({ outdir }).synth();
  return new Map(readdirSync(outdir).map((file) => [file, readFileSync(join(outdir, file), "utf8")]));
}

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: object) => Validatable;

/** kubernetes-models' class for an apiVersion and kind, e.g. rbac.authorization.k8s.io/v1 Role. */
function modelFor(apiVersion: string, kind: string): ModelClass {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const groupKey = group ? group.replace(/[.-](\w)/g, (_match, letter: string) => letter.toUpperCase()) : (version as string);
  const groupModule = (models as unknown as Record<string, Record<string, unknown>>)[groupKey];
  const versionModule = (group ? groupModule?.[version as string] : groupModule) as Record<string, ModelClass> | undefined;
  const model = versionModule?.[kind];
  if (!model) throw new Error(`kubernetes-models has no ${apiVersion} ${kind}`);
  return model;
}

const files = synth();
const objects = [...files.entries()].flatMap(([file, yaml]) =>
  parseAllDocuments(yaml).map((document) => ({
    file,
    object: document.toJS() as { apiVersion: string; kind: string; metadata: { name: string } },
  })),
);

describe("cdk8s synth", () => {
  it("writes the platform chart and the sample TrainingJobs", () => {
    expect([...files.keys()].sort()).toEqual([
      "plan-full-example.k8s.yaml",
      "platform.k8s.yaml",
      "sample-cpu-only.k8s.yaml",
      "sample-timm.k8s.yaml",
      "sample-transformers.k8s.yaml",
      "sample-ultralytics.k8s.yaml",
    ]);
  });

  it("is deterministic: the same input gives the same bytes", () => {
    expect(synth()).toEqual(files);
  });

  it("matches the committed dist/, so reviews see every change", async () => {
    expect(readdirSync(new URL("../../dist/", import.meta.url)).sort()).toEqual([...files.keys()].sort());
    for (const [file, yaml] of files) {
      await expect(yaml).toMatchFileSnapshot(`../../dist/${file}`);
    }
  });

  it.each(objects.map(({ file, object }) => [`${file} ${object.kind}/${object.metadata.name}`, object] as const))(
    "%s validates against the Kubernetes schema",
    (_name, object) => {
      const Model = modelFor(object.apiVersion, object.kind);
      expect(() => new Model(object).validate()).not.toThrow();
    },
  );

  it("the schema check catches a broken object", () => {
    const job = objects.find(({ object }) => object.kind === "Job")?.object as Record<string, unknown>;
    const broken = { ...job, spec: { ...(job.spec as object), backoffLimit: "three" } };
    expect(() => new (modelFor("batch/v1", "Job"))(broken).validate()).toThrow(/backoffLimit/);
  });
});
