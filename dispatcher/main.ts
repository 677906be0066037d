// `npm start`: the dispatcher service. Configuration comes from the environment (see config.ts).
import { hostname } from "node:os";
import { KubeConfig } from "@kubernetes/client-node";
import { ConfigError, type DispatcherConfig, loadConfig } from "./config.ts";
import { KubernetesExecutor } from "./executors/kubernetes-executor.ts";
import { LocalExecutor } from "./executors/local-executor.ts";
import { buildServer } from "./http/server.ts";
import { startLiveStatus } from "./live/live-status.ts";
import { DispatcherMetrics } from "./live/metrics.ts";
import { jsonLinesLog } from "./log.ts";

function kubeConfigFor(config: DispatcherConfig): KubeConfig | undefined {
  const kubeConfig = new KubeConfig();
  switch (config.cluster.kind) {
    case "kubeconfig":
      kubeConfig.loadFromFile(config.cluster.path);
      return kubeConfig;
    case "in-cluster":
      kubeConfig.loadFromCluster();
      return kubeConfig;
    case "none":
      return undefined;
  }
}

async function main(): Promise<void> {
  let config: DispatcherConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
  const kubeConfig = kubeConfigFor(config);
  // In a pod the dispatcher image holds no trainer and its root filesystem is
  // read-only, so the local executor (the rollback path on a host) stays off there.
  const local =
    config.cluster.kind === "in-cluster"
      ? undefined
      : await LocalExecutor.open({
          ...config.local,
          environment: {
            BACKEND_API_URL: config.backendUrl,
            MLFLOW_TRACKING_URI: config.platform.mlflowTrackingUri,
            AWS_S3_ENDPOINT_URL: process.env.AWS_S3_ENDPOINT_URL,
            AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY,
          },
        });
  const metrics = new DispatcherMetrics();
  const live =
    kubeConfig &&
    (await startLiveStatus({
      kubeConfig,
      namespace: config.platform.namespace,
      metrics,
      startupDeadlineSeconds: config.startupDeadlineSeconds,
      gpuNodeCapacity: config.gpuNodeCapacity,
      // Queued Jobs wait in Kueue: their Workloads and queue positions tell why.
      kueue: config.platform.queueing,
      log: jsonLinesLog,
      ...(config.backendUrl !== undefined && {
        backend: {
          url: config.backendUrl,
          ...(config.backendToken !== undefined && { token: config.backendToken }),
          // Replicas elect one deliverer; in a pod the hostname is the pod's name.
          identity: hostname(),
        },
      }),
    }));
  const kubernetes = kubeConfig && new KubernetesExecutor({ kubeConfig, platform: config.platform });
  const server = buildServer({
    apiToken: config.apiToken,
    bodyLimitBytes: config.bodyLimitBytes,
    defaultExecutor: config.defaultExecutor,
    executors: {
      ...(local && { local }),
      ...(kubernetes && { kubernetes }),
    },
    metrics,
    ...(live && { feed: live.feed }),
    logger: true,
  });
  if (!kubeConfig) {
    server.log.info(`no Kubernetes cluster configured: jobs run with the local executor (python ${config.local.trainerDir}/train.py)`);
  }
  server.log.info({ defaultExecutor: config.defaultExecutor, namespace: config.platform.namespace }, "dispatcher configured");
  // Not fatal: /readyz keeps saying the same until the fix is applied, and the local executor,
  // the rollback path, keeps serving meanwhile.
  const readiness = await kubernetes?.ready();
  if (readiness?.ready === false) server.log.error({ executor: "kubernetes" }, `not ready: ${readiness.reason}`);
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => void Promise.all([server.close(), live?.stop()]).then(() => process.exit(0)));
  }
  await server.listen({ port: config.port, host: config.host });
}

await main();
