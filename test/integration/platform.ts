// Puts the platform chart (namespace with Pod Security "restricted", priority
// classes, quota, limits, RBAC, network policy, the dispatcher Deployment) onto
// the integration cluster exactly as `cdk8s synth` wrote it to dist/, with
// server-side apply so every test file can call it and a rerun is a no-op.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type KubeConfig, type KubernetesObject, KubernetesObjectApi, PatchStrategy } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";

export const DIST_DIR = join(import.meta.dirname, "..", "..", "dist");
const FIELD_MANAGER = "integration-tests";

/** Every object of one dist/*.k8s.yaml file, in file order. */
export function distObjects(file: string): KubernetesObject[] {
  return parseAllDocuments(readFileSync(join(DIST_DIR, file), "utf8"))
    .map((document) => document.toJS() as KubernetesObject | null)
    .filter((object): object is KubernetesObject => object !== null);
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
