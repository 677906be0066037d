import { Chart } from "cdk8s";
import { k8s } from "cdk8s-plus-33";
import type { Construct } from "constructs";
import { type PlatformSettingsProps, platformSettings } from "../settings.ts";
import { Dispatcher, type DispatcherImage } from "./dispatcher.ts";
import { DispatcherJobPolicy } from "./dispatcher-job-policy.ts";
import { DispatcherRbac } from "./dispatcher-rbac.ts";
import { TrainingPriorityClasses } from "./priority-classes.ts";
import { type ClusterPeer, TrainerNetworkPolicy } from "./trainer-network-policy.ts";
import { TrainingQueues, type TrainingQueuesProps } from "./training-queues.ts";
import { TrainingQuota, type TrainingQuotaProps } from "./training-quota.ts";

export interface PlatformChartProps {
  /**
   * Cluster-wide settings, shared with every TrainingJob.
   * @default DEFAULT_PLATFORM_SETTINGS
   */
  readonly platform?: PlatformSettingsProps;
  /**
   * GPU and Job caps for the training namespace.
   * @default 16 GPUs, 1000 Jobs
   */
  readonly quota?: Omit<TrainingQuotaProps, "namespace">;
  /**
   * The backend trainers report to.
   * @default pods app=backend in namespace "backend", port 8000
   */
  readonly backend?: ClusterPeer;
  /**
   * The MLflow tracking server.
   * @default pods app.kubernetes.io/name=mlflow in namespace "mlflow", port 5000
   */
  readonly mlflow?: ClusterPeer;
  /**
   * Dispatcher replicas.
   * @default 2
   */
  readonly dispatcherReplicas?: number;
  /**
   * GPUs per node of the largest pool of each gpu-type, for the dispatcher's fail-fast.
   * @default none declared
   */
  readonly gpuNodeCapacity?: Readonly<Record<string, number>>;
  /**
   * Kueue's flavors, queues and quotas; required when `platform.queueing` is on, refused when off.
   * @default none (queueing off)
   */
  readonly queues?: Omit<TrainingQueuesProps, "namespace">;
  /**
   * The dispatcher image to run: the tag (and digest) CI pushed for it.
   * @default tagged with `platform.trainerImageVersion`, no digest
   */
  readonly dispatcherImage?: DispatcherImage;
}

/**
 * Everything the training namespace needs besides the Jobs themselves:
 * the namespace, quotas, priority classes, trainer network policy, and the
 * dispatcher with its least-privilege RBAC and the admission policy that keeps
 * its Jobs TrainingJob-shaped.
 */
export class PlatformChart extends Chart {
  constructor(scope: Construct, id: string, props: PlatformChartProps = {}) {
    super(scope, id);
    const platform = platformSettings(props.platform);
    const { namespace } = platform;
    new k8s.KubeNamespace(this, "Namespace", {
      metadata: {
        name: namespace,
        // Trainers and the dispatcher already meet the restricted profile; enforcing it keeps it so.
        labels: { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest" },
      },
    });
    const { queueing } = platform;
    if (queueing !== (props.queues !== undefined)) {
      throw new Error(
        queueing
          ? "PlatformChart: platform.queueing needs queues (GPU pools and projects)"
          : "PlatformChart: queues given but platform.queueing is off",
      );
    }
    new TrainingPriorityClasses(this, "PriorityClasses", { queueing });
    // Kueue's quotas replace the namespace's GPU cap: a ResourceQuota would refuse the pods of a Job Kueue admitted.
    new TrainingQuota(this, "Quota", { namespace, ...props.quota, gpuQuota: !queueing });
    if (props.queues) new TrainingQueues(this, "Queues", { namespace, ...props.queues });
    new TrainerNetworkPolicy(this, "TrainerNetworkPolicy", {
      namespace,
      backend: props.backend ?? { namespace: "backend", podLabels: { app: "backend" }, port: 8000 },
      mlflow: props.mlflow ?? { namespace: "mlflow", podLabels: { "app.kubernetes.io/name": "mlflow" }, port: 5000 },
    });
    const rbac = new DispatcherRbac(this, "DispatcherRbac", { namespace, queueing });
    new DispatcherJobPolicy(this, "DispatcherJobPolicy", { platform, serviceAccountName: rbac.serviceAccountName });
    new Dispatcher(this, "Dispatcher", {
      platform,
      serviceAccountName: rbac.serviceAccountName,
      ...(props.dispatcherReplicas !== undefined && { replicas: props.dispatcherReplicas }),
      ...(props.gpuNodeCapacity !== undefined && { gpuNodeCapacity: props.gpuNodeCapacity }),
      ...(props.dispatcherImage !== undefined && { image: props.dispatcherImage }),
    });
  }
}
