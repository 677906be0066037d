// Puts the platform chart (namespace with Pod Security "restricted", priority
// classes, quota, limits, RBAC, network policy, the dispatcher Deployment) onto
// the integration cluster exactly as `cdk8s synth` wrote it to dist/, with
// server-side apply so every test file can call it and a rerun is a no-op.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type KubeConfig, type KubernetesObject, KubernetesObjectApi, loadAllYaml, PatchStrategy } from "@kubernetes/client-node";
import { type Chart, Yaml } from "cdk8s";

export const DIST_DIR = join(import.meta.dirname, "..", "..", "dist");
const FIELD_MANAGER = "integration-tests";

/**
 * Every object of one dist/*.k8s.yaml file, in file order, as the client's typed
 * models: its serialiser drops the keys of a plain object that a model spells
 * differently (a LimitRange's `default` was lost, and the API server set it to `max`).
 */
export function distObjects(file: string): KubernetesObject[] {
  return loadAllYaml(readFileSync(join(DIST_DIR, file), "utf8")) as KubernetesObject[];
}

/** A chart's objects, read back from its YAML as distObjects reads dist/ (the typed models, for the same reason). */
export function chartObjects(chart: Chart): KubernetesObject[] {
  return loadAllYaml(Yaml.stringify(...chart.toJson())) as KubernetesObject[];
}

export async function applyObjects(kubeConfig: KubeConfig, objects: readonly KubernetesObject[], dryRun = false): Promise<void> {
  const client = KubernetesObjectApi.makeApiClient(kubeConfig);
  // In order: the namespace before what lives in it.
  for (const object of objects) {
    await client.patch(object, undefined, dryRun ? "All" : undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }
}

export function applyPlatform(kubeConfig: KubeConfig): Promise<void> {
  return applyObjects(kubeConfig, distObjects("platform.k8s.yaml"));
}
