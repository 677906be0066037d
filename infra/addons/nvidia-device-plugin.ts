import * as pulumi from "@pulumi/pulumi";
import { GPU_NODE_AFFINITY, GPU_TOLERATION } from "../gpu-nodes.ts";
import { pinnedRelease, type ReleaseSettings } from "../helm-charts.ts";

export interface NvidiaDevicePluginArgs {
  /** @default the public chart, Helm waiting 600 s */
  readonly releases?: ReleaseSettings;
}

/**
 * Advertises each node's GPUs as the `nvidia.com/gpu` resource, which is what
 * training Jobs request. Runs only on our GPU nodes, through their taint.
 * Not for GKE, which installs its own plugin with the driver.
 */
export class NvidiaDevicePlugin extends pulumi.ComponentResource {
  constructor(name: string, args: NvidiaDevicePluginArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:addons:NvidiaDevicePlugin", name, {}, opts);
    pinnedRelease(
      name,
      "nvidiaDevicePlugin",
      {
        // system-node-critical pods are admitted everywhere in kube-system, not in every other namespace.
        namespace: "kube-system",
        values: {
          affinity: GPU_NODE_AFFINITY,
          tolerations: [GPU_TOLERATION],
          priorityClassName: "system-node-critical",
        },
      },
      args.releases ?? {},
      { parent: this },
    );
    this.registerOutputs({});
  }
}
