import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { GPU_TAINT_FOR_NODE_POOLS, gpuNodeLabels } from "../gpu-nodes.ts";

export interface GkeGpuArgs {
  /** Value of the `gpu-type` node label, what requests name in resources.gpuType. */
  readonly gpuType: string;
  /** GCE accelerator type, e.g. "nvidia-l4". */
  readonly acceleratorType: string;
  readonly gpusPerNode: number;
  /**
   * GKE installs the NVIDIA driver (and its own device plugin) at node start.
   * @default "LATEST"
   */
  readonly driverVersion?: "DEFAULT" | "LATEST";
}

export interface GkeNodePoolArgs extends Pick<gcp.container.NodePoolArgs, "cluster" | "project" | "location" | "nodeLocations"> {
  readonly machineType: string;
  /** Makes this a GPU pool: accelerators with a managed driver, the GPU labels and the GPU taint. */
  readonly gpu?: GkeGpuArgs;
  /**
   * Spot VMs: much cheaper, reclaimed with 30 seconds' notice. Preempted
   * training pods are retried without counting as failures.
   * @default false
   */
  readonly spot?: boolean;
  /** Nodes across all zones; 0 lets the autoscaler remove every node while no pod needs one. */
  readonly minNodes: number;
  readonly maxNodes: number;
  /** @default 100 */
  readonly diskSizeGb?: number;
  /** Email of the nodes' service account. */
  readonly serviceAccount: pulumi.Input<string>;
  /** Cost labels for the VMs. */
  readonly labels: Readonly<Record<string, string>>;
}

const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";

/** A GKE node pool that GKE's own autoscaler sizes between minNodes and maxNodes. */
export class GkeNodePool extends pulumi.ComponentResource {
  readonly nodePool: gcp.container.NodePool;

  constructor(name: string, args: GkeNodePoolArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:nodes:GkeNodePool", name, {}, opts);
    this.nodePool = createNodePool(name, args, this);
    this.registerOutputs({ nodePoolName: this.nodePool.name });
  }
}

function createNodePool(name: string, args: GkeNodePoolArgs, parent: pulumi.Resource): gcp.container.NodePool {
  if (args.minNodes > args.maxNodes) throw new Error(`${name}: minNodes ${args.minNodes} is above maxNodes ${args.maxNodes}`);
  const { gpu } = args;
  return new gcp.container.NodePool(
    name,
    {
      cluster: args.cluster,
      project: args.project,
      location: args.location,
      nodeLocations: args.nodeLocations,
      initialNodeCount: args.minNodes > 0 ? 1 : 0,
      // Totals across zones; ANY finds scarce GPUs and spot capacity in whichever zone has them.
      autoscaling: { totalMinNodeCount: args.minNodes, totalMaxNodeCount: args.maxNodes, locationPolicy: gpu ? "ANY" : "BALANCED" },
      management: { autoRepair: true, autoUpgrade: true },
      nodeConfig: {
        machineType: args.machineType,
        spot: args.spot ?? false,
        diskSizeGb: args.diskSizeGb ?? 100,
        diskType: "pd-balanced",
        serviceAccount: args.serviceAccount,
        oauthScopes: [CLOUD_PLATFORM_SCOPE],
        // Pods see Workload Identity's metadata server, never the node's credentials.
        workloadMetadataConfig: { mode: "GKE_METADATA" },
        shieldedInstanceConfig: { enableSecureBoot: true, enableIntegrityMonitoring: true },
        resourceLabels: args.labels,
        ...(gpu && {
          guestAccelerators: [
            {
              type: gpu.acceleratorType,
              count: gpu.gpusPerNode,
              gpuDriverInstallationConfig: { gpuDriverVersion: gpu.driverVersion ?? "LATEST" },
            },
          ],
          labels: gpuNodeLabels(gpu.gpuType),
          taints: [GPU_TAINT_FOR_NODE_POOLS],
        }),
      },
    },
    { parent },
  );
}
