/**
 * The whole platform for one stack: a cluster from the configured cloud, then
 * the same in-cluster parts everywhere.
 */
import * as pulumi from "@pulumi/pulumi";
import type { GpuPoolQuota } from "../charts-ts/platform/training-queues.ts";
import { platformSettings } from "../charts-ts/settings.ts";
import { DcgmExporter } from "./addons/dcgm-exporter.ts";
import { Kueue } from "./addons/kueue.ts";
import { NvidiaDevicePlugin } from "./addons/nvidia-device-plugin.ts";
import type { ClusterFoundation, FoundationContext } from "./clouds/cluster-foundation.ts";
import { eksFoundation } from "./clouds/eks.ts";
import { gkeFoundation } from "./clouds/gke.ts";
import { localFoundation } from "./clouds/local.ts";
import type { StackConfig } from "./config/load-stack-config.ts";
import { costTags } from "./cost-tags.ts";
import { gpuNodeCapacity } from "./gpu-nodes.ts";
import type { ReleaseSettings } from "./helm-charts.ts";
import { MLFLOW_CONTAINER_PORT, MLFLOW_POD_LABELS, MLFLOW_SERVICE_ACCOUNT, Mlflow } from "./mlflow/mlflow.ts";
import { mlflowEndpoint } from "./mlflow/mlflow-endpoint.ts";
import { Monitoring } from "./monitoring/monitoring.ts";
import { TrainingNamespace } from "./platform/training-namespace.ts";

export type PlatformOutputs = Readonly<Record<string, pulumi.Input<unknown>>>;

/** Declares every resource of a stack; `config` comes from loadStackConfig. */
export function platform(config: StackConfig): PlatformOutputs {
  const settings = platformSettings(config.platform);
  const mlflowAt = mlflowEndpoint(settings.mlflowTrackingUri);
  const releases: ReleaseSettings = {
    chartSources: config.helmCharts,
    timeoutSeconds: config.deployTimeoutMinutes * 60,
    // Local chart paths are written relative to the stack files (stacks/).
    baseDirectory: pulumi.runtime.getRootDirectory() || process.cwd(),
  };
  const foundation = clusterFoundation(config, {
    tags: costTags(config.costTags),
    mlflowIdentity: { namespace: mlflowAt.namespace, serviceAccount: MLFLOW_SERVICE_ACCOUNT },
    releases,
  });
  const inCluster = { providers: [foundation.kubernetes], dependsOn: [...foundation.ready] };
  const { secrets, queueing } = config;

  const kueue =
    queueing.enabled && queueing.kueue.install
      ? new Kueue("kueue", { managedNamespace: settings.namespace, replicas: queueing.kueue.replicas, releases }, inCluster)
      : undefined;
  const training = new TrainingNamespace(
    "training",
    {
      chart: {
        // The images block is the one place that says what runs: the trainers' registry and tag, and the dispatcher's.
        platform: {
          ...config.platform,
          registry: config.images.registry,
          trainerImageVersion: config.images.trainerTag,
          trainerImageDigests: config.images.trainerDigests,
          queueing: queueing.enabled,
        },
        dispatcherImage: {
          tag: config.images.dispatcherTag,
          ...(config.images.dispatcherDigest !== undefined && { digest: config.images.dispatcherDigest }),
        },
        ...(queueing.enabled && {
          queues: {
            gpuPools: queuePools(config),
            projects: queueing.projects ?? [],
            ...(queueing.cpuQuotaPerProject !== undefined && { cpuQuotaPerProject: queueing.cpuQuotaPerProject }),
          },
        }),
        quota: config.quota,
        dispatcherReplicas: config.dispatcherReplicas,
        // An existing cluster's pools are not declared here: the dispatcher judges by its nodes.
        ...(config.cloud !== "local" && { gpuNodeCapacity: gpuNodeCapacity(config.gpuPools) }),
        mlflow: { namespace: mlflowAt.namespace, podLabels: MLFLOW_POD_LABELS, port: MLFLOW_CONTAINER_PORT },
      },
      backendApiUrl: config.backendApiUrl,
      objectStore: { endpoint: secrets.r2Endpoint, accessKey: secrets.r2AccessKey, secretKey: secrets.r2SecretKey },
      dispatcherTokens: { apiToken: secrets.dispatcherApiToken, backendToken: secrets.backendToken },
      ...(secrets.imagePullSecret !== undefined && { imagePullSecret: secrets.imagePullSecret }),
      ...(kueue !== undefined && { kueue: [kueue.release] }),
    },
    inCluster,
  );

  const monitoring = new Monitoring(
    "monitoring",
    {
      retention: config.monitoring.retention,
      storageGi: config.monitoring.storageGi,
      ...(config.storageClassName !== undefined && { storageClassName: config.storageClassName }),
      grafanaAdminPassword: secrets.grafanaAdminPassword,
      dispatcherService: training.dispatcher.service,
      dispatcherNamespace: training.namespaceObject,
      releases,
    },
    inCluster,
  );

  if (foundation.installDevicePlugin) new NvidiaDevicePlugin("nvidia-device-plugin", { releases }, inCluster);
  new DcgmExporter(
    "dcgm-exporter",
    {
      namespace: monitoring.namespace,
      ...(foundation.nvidiaDriverHostPath !== undefined && { nvidiaDriverHostPath: foundation.nvidiaDriverHostPath }),
      releases,
    },
    { ...inCluster, dependsOn: [...inCluster.dependsOn, monitoring.stack] },
  );

  new Mlflow(
    "mlflow",
    {
      endpoint: mlflowAt,
      database: foundation.mlflow.database,
      databasePassword: secrets.mlflowDbPassword,
      artifacts: foundation.mlflow.artifacts,
      releases,
    },
    inCluster,
  );

  return {
    ...foundation.outputs,
    trainingNamespace: training.namespace,
    mlflowTrackingUri: settings.mlflowTrackingUri,
    monitoringNamespace: monitoring.namespace,
  };
}

/** The GPU pools the queues hold quota for: the stack's own pools, or those an existing cluster declares for them. */
function queuePools(config: StackConfig): GpuPoolQuota[] {
  switch (config.cloud) {
    case "eks":
      return config.gpuPools.map(({ gpuType, maxSize, gpusPerNode }) => ({ gpuType, maxSize, gpusPerNode }));
    case "gke":
      return config.gpuPools.map(({ gpuType, maxNodes, gpusPerNode }) => ({ gpuType, maxSize: maxNodes, gpusPerNode }));
    case "local":
      return config.queueing.gpuPools ?? [];
  }
}

function clusterFoundation(config: StackConfig, context: FoundationContext): ClusterFoundation {
  switch (config.cloud) {
    case "eks":
      return eksFoundation(config, context);
    case "gke":
      return gkeFoundation(config, context);
    case "local":
      return localFoundation(config);
  }
}
