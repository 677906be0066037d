// Vitest globalSetup for integration tests: provides the path of a kubeconfig
// for a real Kubernetes control plane (see test/cluster/up.sh).
//
//   KUBECONFIG_TEST=/path/to/kubeconfig  use that cluster; start and stop nothing
//   (unset)                              run test/cluster/up.sh (builds the
//                                        binaries on first use), provide
//                                        <repo>/.cluster/kubeconfig, and run
//                                        down.sh after the run
//   TP_CLUSTER_KEEP=1                    leave the cluster up after the run
//
// If the cluster cannot be started this throws, so the run fails: integration
// tests never silently skip.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** Absolute path of an admin kubeconfig for the integration-test cluster. */
    kubeconfig: string;
  }
}

const clusterDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(clusterDir, "..", "..");
// Same default as up.sh/down.sh.
const stateDir = process.env.TP_CLUSTER_DIR ? path.resolve(process.env.TP_CLUSTER_DIR) : path.join(repoRoot, ".cluster");

function runScript(script: string): void {
  const started = Date.now();
  const result = spawnSync("bash", [path.join(clusterDir, script)], {
    cwd: repoRoot,
    env: process.env,
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (result.error) {
    throw new Error(`could not run test/cluster/${script}: ${result.error.message}`);
  }
  if (result.status !== 0) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with status ${result.status}`;
    throw new Error(
      `test/cluster/${script} ${how} after ${Math.round((Date.now() - started) / 1000)}s; ` +
        `see its output above and the component logs in ${path.join(stateDir, "logs")}`,
    );
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.KUBECONFIG_TEST;
  if (external) {
    const kubeconfig = path.resolve(external);
    if (!existsSync(kubeconfig)) {
      throw new Error(`KUBECONFIG_TEST=${external} does not exist`);
    }
    project.provide("kubeconfig", kubeconfig);
    return undefined;
  }

  runScript("up.sh");
  const kubeconfig = path.join(stateDir, "kubeconfig");
  if (!existsSync(kubeconfig)) {
    runScript("down.sh");
    throw new Error(`test/cluster/up.sh succeeded but ${kubeconfig} does not exist`);
  }
  project.provide("kubeconfig", kubeconfig);

  return async () => {
    if (process.env.TP_CLUSTER_KEEP === "1") {
      console.log(`TP_CLUSTER_KEEP=1: leaving the cluster running (KUBECONFIG=${kubeconfig})`);
      return;
    }
    runScript("down.sh");
  };
}
