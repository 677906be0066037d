import * as pulumi from "@pulumi/pulumi";
import { GPU_NODE_AFFINITY, GPU_TOLERATION } from "../gpu-nodes.ts";
import { pinnedRelease, type ReleaseSettings } from "../helm-charts.ts";

export interface DcgmExporterArgs {
  /** Namespace of the monitoring stack, whose Prometheus scrapes the exporter through its ServiceMonitor. */
  readonly namespace: pulumi.Input<string>;
  /**
   * Host directory holding the NVIDIA driver's libraries when they are not on
   * the node's default library path (GKE: /home/kubernetes/bin/nvidia).
   * @default the node's default library path
   */
  readonly nvidiaDriverHostPath?: string;
  /** @default the public chart, Helm waiting 600 s */
  readonly releases?: ReleaseSettings;
}

const DRIVER_MOUNT_PATH = "/usr/local/nvidia";

/**
 * NVIDIA DCGM exporter: GPU utilisation, memory, temperature and errors per GPU
 * and per pod, for Prometheus. Needs the ServiceMonitor CRD installed first.
 */
export class DcgmExporter extends pulumi.ComponentResource {
  constructor(name: string, args: DcgmExporterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:addons:DcgmExporter", name, {}, opts);
    const driver = args.nvidiaDriverHostPath;
    pinnedRelease(
      name,
      "dcgmExporter",
      {
        namespace: args.namespace,
        values: {
          affinity: GPU_NODE_AFFINITY,
          tolerations: [GPU_TOLERATION],
          serviceMonitor: { enabled: true, interval: "15s" },
          ...(driver !== undefined && {
            extraHostVolumes: [{ name: "nvidia-driver", hostPath: driver }],
            extraVolumeMounts: [{ name: "nvidia-driver", mountPath: DRIVER_MOUNT_PATH, readOnly: true }],
            extraEnv: [{ name: "LD_LIBRARY_PATH", value: `${DRIVER_MOUNT_PATH}/lib64` }],
          }),
        },
      },
      args.releases ?? {},
      { parent: this },
    );
    this.registerOutputs({});
  }
}
