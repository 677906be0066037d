/** Where the MLflow tracking server is reachable inside the cluster. */
export interface MlflowEndpoint {
  readonly serviceName: string;
  readonly namespace: string;
  readonly port: number;
}

const IN_CLUSTER_SERVICE_URL =
  /^http:\/\/([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.svc(\.cluster\.local)?:(\d{1,5})\/?$/;

/** The Service behind an in-cluster URL (`http://<service>.<namespace>.svc.cluster.local:<port>`), or undefined for any other URL. */
export function parseMlflowEndpoint(trackingUri: string): MlflowEndpoint | undefined {
  const match = IN_CLUSTER_SERVICE_URL.exec(trackingUri);
  return match ? { serviceName: match[1] as string, namespace: match[3] as string, port: Number(match[6]) } : undefined;
}

/**
 * The Service the trainers and the dispatcher are configured to reach MLflow at,
 * so the MLflow this stack deploys is exactly where they look for it.
 */
export function mlflowEndpoint(trackingUri: string): MlflowEndpoint {
  const endpoint = parseMlflowEndpoint(trackingUri);
  if (!endpoint) {
    throw new Error(`MLflow tracking URI ${JSON.stringify(trackingUri)} is not http://<service>.<namespace>.svc.cluster.local:<port>`);
  }
  return endpoint;
}
