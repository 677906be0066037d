import * as gcp from "@pulumi/gcp";
import * as k8s from "@pulumi/kubernetes";
import { GkeCluster } from "../cluster/gke/gke-cluster.ts";
import type { StackConfig } from "../config/load-stack-config.ts";
import { GcpMlflowStorage } from "../mlflow/gcp-mlflow-storage.ts";
import { GkeNodePool } from "../nodes/gke-node-pool.ts";
import { type ClusterFoundation, type FoundationContext, KUBERNETES_PROVIDER_SETTINGS } from "./cluster-foundation.ts";

/** A GKE cluster with a system pool, GPU pools that scale to zero, Cloud SQL and GCS for MLflow. */
export function gkeFoundation(config: Extract<StackConfig, { cloud: "gke" }>, context: FoundationContext): ClusterFoundation {
  const { gke, clusterName } = config;
  const gcpProvider = new gcp.Provider("gcp", { project: gke.project, region: gke.region, defaultLabels: context.tags });
  const onGcp = { providers: [gcpProvider] };

  const cluster = new GkeCluster(
    "cluster",
    {
      clusterName,
      project: gke.project,
      region: gke.region,
      network: gke.network,
      subnetwork: gke.subnetwork,
      releaseChannel: gke.releaseChannel,
      deletionProtection: config.deletionProtection,
      labels: context.tags,
    },
    onGcp,
  );

  const nodePool = {
    cluster: cluster.cluster.name,
    project: gke.project,
    location: gke.region,
    serviceAccount: cluster.nodeServiceAccount.email,
    labels: context.tags,
  };
  const systemNodes = new GkeNodePool("system", { ...nodePool, ...gke.systemNodes }, onGcp);
  for (const pool of config.gpuPools) {
    new GkeNodePool(
      `gpu-${pool.name}`,
      {
        ...nodePool,
        machineType: pool.machineType,
        nodeLocations: pool.nodeLocations,
        spot: pool.spot,
        minNodes: pool.minNodes,
        maxNodes: pool.maxNodes,
        diskSizeGb: pool.diskSizeGb,
        gpu: {
          gpuType: pool.gpuType,
          acceleratorType: pool.acceleratorType,
          gpusPerNode: pool.gpusPerNode,
          driverVersion: pool.driverVersion,
        },
      },
      onGcp,
    );
  }

  const kubernetes = new k8s.Provider("gke", { kubeconfig: cluster.kubeconfig, ...KUBERNETES_PROVIDER_SETTINGS });
  const mlflowStorage = new GcpMlflowStorage(
    "mlflow",
    {
      project: gke.project,
      region: gke.region,
      network: gke.network,
      clusterName,
      ...config.mlflow.database,
      databasePassword: config.secrets.mlflowDbPassword,
      deletionProtection: config.deletionProtection,
      labels: context.tags,
      ...context.mlflowIdentity,
    },
    { ...onGcp, dependsOn: [cluster] },
  );

  return {
    kubernetes,
    ready: [systemNodes],
    mlflow: mlflowStorage,
    installDevicePlugin: false,
    nvidiaDriverHostPath: "/home/kubernetes/bin/nvidia",
    outputs: {
      clusterName: cluster.cluster.name,
      region: gke.region,
      kubeconfig: cluster.kubeconfig,
      mlflowArtifactsBucket: mlflowStorage.bucket.name,
    },
  };
}
