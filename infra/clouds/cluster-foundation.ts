import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { ReleaseSettings } from "../helm-charts.ts";
import type { MlflowArtifacts, MlflowDatabase } from "../mlflow/mlflow.ts";

/**
 * Settings of every cloud's Kubernetes provider. Secrets and ConfigMaps are
 * updated in place: by default the provider replaces them when their data
 * changes, which for our fixed names means delete, then create, and a moment
 * without the object (a rotated token left the dispatcher without its Secret).
 */
export const KUBERNETES_PROVIDER_SETTINGS = { enableSecretMutable: true, enableConfigMapMutable: true } as const;

/** What a cloud (or an existing cluster) provides to the cloud-neutral part of the platform. */
export interface ClusterFoundation {
  /** The provider every in-cluster resource goes through. */
  readonly kubernetes: k8s.Provider;
  /** What must exist before workloads are installed: nodes to run them, storage drivers. */
  readonly ready: readonly pulumi.Resource[];
  readonly mlflow: { readonly database: MlflowDatabase; readonly artifacts: MlflowArtifacts };
  /** False where the cloud installs its own NVIDIA device plugin along with the driver (GKE). */
  readonly installDevicePlugin: boolean;
  /** Where GPU nodes keep the NVIDIA driver, when not on the default library path. */
  readonly nvidiaDriverHostPath?: string;
  /** Stack outputs particular to the cloud. */
  readonly outputs: Readonly<Record<string, pulumi.Input<unknown>>>;
}

/** What every cloud needs to know from the rest of the stack. */
export interface FoundationContext {
  /** Cost tags (AWS) or labels (GCP) for every resource. */
  readonly tags: Readonly<Record<string, string>>;
  /** The Kubernetes ServiceAccount MLflow runs as, to bind a cloud identity to. */
  readonly mlflowIdentity: { readonly namespace: string; readonly serviceAccount: string };
  /** Chart sources and Helm's timeout, for the cloud's own releases (cluster-autoscaler). */
  readonly releases: ReleaseSettings;
}
