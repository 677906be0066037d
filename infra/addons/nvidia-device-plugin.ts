import * as pulumi from "@pulumi/pulumi";
import { GPU_NODE_AFFINITY, GPU_TOLERATION } from "../gpu-nodes.ts";
import { HELM_CHARTS, pinnedRelease } from "../helm-charts.ts";

/**
 * Advertises each node's GPUs as the `nvidia.com/gpu` resource, which is what
 * training Jobs request. Runs only on our GPU nodes, through their taint.
 * Not for GKE, which installs its own plugin with the driver.
 */
export class NvidiaDevicePlugin extends pulumi.ComponentResource {
  constructor(name: string, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:addons:NvidiaDevicePlugin", name, {}, opts);
    pinnedRelease(
      name,
      HELM_CHARTS.nvidiaDevicePlugin,
      {
        // system-node-critical pods are admitted everywhere in kube-system, not in every other namespace.
        namespace: "kube-system",
        values: {
          affinity: GPU_NODE_AFFINITY,
          tolerations: [GPU_TOLERATION],
          priorityClassName: "system-node-critical",
        },
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}
