// A kubeconfig that authenticates as a ServiceAccount with a TokenRequest token, as a pod's
// mounted token would: the dispatcher with nothing but what the platform chart grants it.
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";

export async function serviceAccountConfig(admin: KubeConfig, namespace: string, name: string): Promise<KubeConfig> {
  const tokenRequest = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const cluster = admin.getCurrentCluster();
  if (!cluster || !tokenRequest.status?.token) throw new Error("no cluster in the kubeconfig, or no token issued");
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token: tokenRequest.status.token }],
    contexts: [{ name, cluster: cluster.name, user: name }],
    currentContext: name,
  });
  return config;
}
