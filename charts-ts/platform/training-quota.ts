import { k8s } from "cdk8s-plus-33";
import { Construct } from "constructs";
import { GPU_RESOURCE } from "../training-job.ts";

export interface TrainingQuotaProps {
  readonly namespace: string;
  /**
   * GPUs all training Jobs in the namespace may request together.
   * @default 16
   */
  readonly maxGpus?: number;
  /**
   * Whether the namespace's GPU requests are capped at all (off when Kueue's quotas govern GPUs).
   * @default true
   */
  readonly gpuQuota?: boolean;
  /**
   * Jobs that may exist at once (finished ones count until their TTL expires).
   * @default 1000
   */
  readonly maxJobs?: number;
}

/**
 * Caps the namespace's GPU spend and gives containers that forget to ask for
 * resources a modest default instead of an unbounded share of a node.
 */
export class TrainingQuota extends Construct {
  constructor(scope: Construct, id: string, props: TrainingQuotaProps) {
    super(scope, id);
    new k8s.KubeResourceQuota(this, "Quota", {
      metadata: { name: "training-quota", namespace: props.namespace },
      spec: {
        hard: {
          ...(props.gpuQuota !== false && { [`requests.${GPU_RESOURCE}`]: k8s.Quantity.fromNumber(props.maxGpus ?? 16) }),
          "count/jobs.batch": k8s.Quantity.fromNumber(props.maxJobs ?? 1000),
        },
      },
    });
    new k8s.KubeLimitRange(this, "Limits", {
      metadata: { name: "training-defaults", namespace: props.namespace },
      spec: {
        limits: [
          {
            type: "Container",
            default: { cpu: k8s.Quantity.fromString("1"), memory: k8s.Quantity.fromString("2Gi") },
            defaultRequest: { cpu: k8s.Quantity.fromString("500m"), memory: k8s.Quantity.fromString("1Gi") },
            max: { cpu: k8s.Quantity.fromString("64"), memory: k8s.Quantity.fromString("512Gi") },
          },
        ],
      },
    });
  }
}
