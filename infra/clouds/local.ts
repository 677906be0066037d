import * as k8s from "@pulumi/kubernetes";
import type { StackConfig } from "../config/load-stack-config.ts";
import { type ClusterFoundation, KUBERNETES_PROVIDER_SETTINGS } from "./cluster-foundation.ts";

/**
 * An existing cluster, reached through a kubeconfig context: no cloud resources;
 * MLflow gets an in-cluster Postgres and keeps artifacts in the trainers' object store.
 */
export function localFoundation(config: Extract<StackConfig, { cloud: "local" }>): ClusterFoundation {
  const { kubeconfig, context } = config.kubernetes;
  const { artifacts, database } = config.mlflow;
  return {
    kubernetes: new k8s.Provider("local", { context, ...(kubeconfig !== undefined && { kubeconfig }), ...KUBERNETES_PROVIDER_SETTINGS }),
    ready: [],
    mlflow: {
      database: {
        kind: "in-cluster",
        storageGi: database.storageGi,
        ...(config.storageClassName !== undefined && { storageClassName: config.storageClassName }),
      },
      artifacts: {
        kind: "s3-compatible",
        bucket: artifacts.bucket,
        path: artifacts.path,
        endpoint: config.secrets.r2Endpoint,
        accessKeyId: config.secrets.r2AccessKey,
        secretAccessKey: config.secrets.r2SecretKey,
      },
    },
    installDevicePlugin: true,
    outputs: { kubernetesContext: context },
  };
}
