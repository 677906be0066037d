/**
 * Platform settings: what the platform team decides once per cluster, as
 * opposed to the training request, which the backend sends per run.
 */
import type { Framework } from "./catalogue.ts";

export interface PlatformSettingsProps {
  /**
   * Registry that holds the trainer images.
   * @default "ghcr.io/myorg"
   */
  readonly registry?: string;
  /**
   * Tag of the trainer images.
   * @default "v1.0"
   */
  readonly trainerImageVersion?: string;
  /**
   * Digest (`sha256:<64 hex>`) of each framework's trainer image at that tag: a Job then names
   * exactly that build (`<image>:<tag>@<digest>`), whatever is pushed under the tag later.
   * @default none: the tag alone
   */
  readonly trainerImageDigests?: Readonly<Partial<Record<Framework, string>>>;
  /**
   * Namespace of training Jobs.
   * @default "training"
   */
  readonly namespace?: string;
  /**
   * Secret with the object store's `endpoint`, `access-key` and `secret-key`.
   * @default "r2-credentials"
   */
  readonly objectStoreSecretName?: string;
  /**
   * ConfigMap with the backend's `api-url`.
   * @default "backend-config"
   */
  readonly backendConfigMapName?: string;
  /**
   * MLflow tracking server the trainers log to.
   * @default "http://mlflow-service.mlflow.svc.cluster.local:5000"
   */
  readonly mlflowTrackingUri?: string;
  /**
   * Failed attempts a Job may retry before it fails.
   * @default 3
   */
  readonly backoffLimit?: number;
  /**
   * How long a finished Job (and its logs) stays queryable.
   * @default 86400
   */
  readonly ttlSecondsAfterFinished?: number;
  /**
   * Time between SIGTERM and SIGKILL when a trainer is stopped or preempted:
   * long enough to write and upload a checkpoint.
   * @default 300
   */
  readonly terminationGracePeriodSeconds?: number;
  /**
   * Size of the in-memory /dev/shm that PyTorch DataLoader workers share.
   * @default "2Gi"
   */
  readonly sharedMemorySize?: string;
  /**
   * Unprivileged user and group the trainer runs as; the images create it.
   * @default 1000
   */
  readonly runAsUser?: number;
  /**
   * Queue training Jobs with Kueue (the platform chart's TrainingQueues): quotas per
   * GPU type and project, borrowing, and preemption among training workloads only.
   * Off, the chart is what it was before Kueue: PriorityClasses preempt, a
   * ResourceQuota caps the namespace's GPUs.
   * @default false
   */
  readonly queueing?: boolean;
  /**
   * A docker-registry Secret (`kubernetes.io/dockerconfigjson`) in the training namespace that
   * the trainers' and the dispatcher's pods pull their images with, for a private registry.
   * The dispatcher's admission policy lets its Jobs name this one and no other.
   * @default none: images are pulled anonymously (or with the nodes' own registry credentials)
   */
  readonly imagePullSecret?: string;
}

/** Settings with every default filled in; a pull secret stays optional, as "none" is its default. */
export type PlatformSettings = Required<Omit<PlatformSettingsProps, "imagePullSecret">> & Pick<PlatformSettingsProps, "imagePullSecret">;

export const DEFAULT_PLATFORM_SETTINGS: PlatformSettings = {
  registry: "ghcr.io/myorg",
  trainerImageVersion: "v1.0",
  trainerImageDigests: {},
  namespace: "training",
  objectStoreSecretName: "r2-credentials",
  backendConfigMapName: "backend-config",
  mlflowTrackingUri: "http://mlflow-service.mlflow.svc.cluster.local:5000",
  backoffLimit: 3,
  ttlSecondsAfterFinished: 86_400,
  terminationGracePeriodSeconds: 300,
  sharedMemorySize: "2Gi",
  runAsUser: 1000,
  queueing: false,
};

export function platformSettings(props: PlatformSettingsProps = {}): PlatformSettings {
  const defined = Object.fromEntries(Object.entries(props).filter(([, value]) => value !== undefined));
  return { ...DEFAULT_PLATFORM_SETTINGS, ...defined };
}

/** PriorityClass name for a request priority; the platform chart creates all three. */
export function priorityClassName(priority: "high" | "default" | "low"): string {
  return `training-${priority}`;
}
