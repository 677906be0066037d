import { k8s } from "cdk8s-plus-33";
import { Construct } from "constructs";
import { DISPATCHER_ENV, platformSettingsEnv } from "../../dispatcher/config.ts";
import { formatGpuNodeCapacity, parseGpuNodeCapacity } from "../../dispatcher/status/node-fit.ts";
import { DISPATCHER_IMAGE_REPOSITORY, IMAGE_DIGEST } from "../catalogue.ts";
import { DISPATCHER_LABELS } from "../labels.ts";
import type { PlatformSettings } from "../settings.ts";
import { imagePullSecrets } from "../training-job.ts";

/** The dispatcher image of one build: its tag and, to pin exactly that build, its digest. */
export interface DispatcherImage {
  /** The tag CI pushed (the commit SHA). */
  readonly tag: string;
  /**
   * The image's digest (`sha256:<64 hex>`): the reference then names that build even if the tag moves.
   * @default none: the tag alone
   */
  readonly digest?: string;
}

export interface DispatcherProps {
  /** Platform settings the dispatcher renders TrainingJobs with; the same ones `cdk8s synth` used. */
  readonly platform: PlatformSettings;
  /** ServiceAccount bound to the dispatcher's Role. */
  readonly serviceAccountName: string;
  /**
   * Which dispatcher image runs, under the platform's registry.
   * @default tagged with the trainer image version, no digest
   */
  readonly image?: DispatcherImage;
  /**
   * Replicas: all serve the API; a Lease elects the one that delivers callbacks.
   * @default 2
   */
  readonly replicas?: number;
  /**
   * Secret holding `api-token` (what the backend presents) and `backend-token`
   * (what the dispatcher presents to the backend).
   * @default "training-dispatcher"
   */
  readonly tokenSecretName?: string;
  /**
   * GPUs per node of the largest pool of each gpu-type (`{ t4: 1, a100: 8 }`): a job
   * asking for more than its type's pool has fails at once, even while the pool is at zero.
   * @default none declared: the dispatcher judges by the nodes present and the autoscaler
   */
  readonly gpuNodeCapacity?: Readonly<Record<string, number>>;
}

const HTTP_PORT = 8080;
const SECRETS_DIR = "/var/run/secrets/training-dispatcher";

/** `<registry>/training-dispatcher:<tag>[@<digest>]`; a bad digest fails the synth, not the rollout. */
function dispatcherImageReference(registry: string, image: DispatcherImage): string {
  if (image.digest !== undefined && !IMAGE_DIGEST.test(image.digest)) {
    throw new Error(`dispatcher image digest: must be sha256:<64 lower-case hex digits>, not ${JSON.stringify(image.digest)}`);
  }
  return `${registry}/${DISPATCHER_IMAGE_REPOSITORY}:${image.tag}${image.digest !== undefined ? `@${image.digest}` : ""}`;
}

/** GPU_NODE_CAPACITY's value, checked here so a bad entry fails the synth, not the dispatcher's start. */
function gpuNodeCapacityEnv(capacity: Readonly<Record<string, number>>): string {
  const text = formatGpuNodeCapacity(new Map(Object.entries(capacity)));
  if (text === "") throw new Error("gpuNodeCapacity is empty: leave it out when no GPU pools are declared");
  try {
    parseGpuNodeCapacity(text);
  } catch (error) {
    throw new Error(`gpuNodeCapacity: ${(error as Error).message}`);
  }
  return text;
}

/** The dispatcher's Deployment, Service and PodDisruptionBudget. */
export class Dispatcher extends Construct {
  constructor(scope: Construct, id: string, props: DispatcherProps) {
    super(scope, id);
    const { platform } = props;
    const metadata = { name: "training-dispatcher", namespace: platform.namespace, labels: DISPATCHER_LABELS };
    const tokenSecretName = props.tokenSecretName ?? "training-dispatcher";
    const env: Record<string, string> = {
      [DISPATCHER_ENV.port]: String(HTTP_PORT),
      [DISPATCHER_ENV.defaultExecutor]: "kubernetes",
      ...platformSettingsEnv(platform),
      [DISPATCHER_ENV.apiTokenFile]: `${SECRETS_DIR}/api-token`,
      [DISPATCHER_ENV.backendTokenFile]: `${SECRETS_DIR}/backend-token`,
      ...(props.gpuNodeCapacity !== undefined && { [DISPATCHER_ENV.gpuNodeCapacity]: gpuNodeCapacityEnv(props.gpuNodeCapacity) }),
      // Unset means off, so a chart without queueing renders the Deployment it always did.
      ...(platform.queueing && { [DISPATCHER_ENV.queueing]: "true" }),
    };
    const probe = (path: string): k8s.Probe => ({
      httpGet: { path, port: k8s.IntOrString.fromString("http") },
      periodSeconds: 10,
      timeoutSeconds: 2,
    });

    new k8s.KubeDeployment(this, "Deployment", {
      metadata,
      spec: {
        replicas: props.replicas ?? 2,
        selector: { matchLabels: DISPATCHER_LABELS },
        strategy: {
          type: "RollingUpdate",
          rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(0), maxSurge: k8s.IntOrString.fromNumber(1) },
        },
        template: {
          metadata: { labels: DISPATCHER_LABELS },
          spec: {
            serviceAccountName: props.serviceAccountName,
            securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: "RuntimeDefault" } },
            containers: [
              {
                name: "dispatcher",
                image: dispatcherImageReference(platform.registry, props.image ?? { tag: platform.trainerImageVersion }),
                ports: [{ name: "http", containerPort: HTTP_PORT }],
                env: [
                  ...Object.entries(env).map(([name, value]) => ({ name, value })),
                  {
                    name: DISPATCHER_ENV.backendUrl,
                    valueFrom: { configMapKeyRef: { name: platform.backendConfigMapName, key: "api-url" } },
                  },
                ],
                readinessProbe: probe("/readyz"),
                livenessProbe: { ...probe("/healthz"), failureThreshold: 3 },
                resources: {
                  requests: { cpu: k8s.Quantity.fromString("100m"), memory: k8s.Quantity.fromString("256Mi") },
                  limits: { memory: k8s.Quantity.fromString("1Gi") },
                },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
                volumeMounts: [{ name: "tokens", mountPath: SECRETS_DIR, readOnly: true }],
              },
            ],
            ...imagePullSecrets(platform),
            volumes: [{ name: "tokens", secret: { secretName: tokenSecretName, defaultMode: 0o440 } }],
          },
        },
      },
    });
    new k8s.KubeService(this, "Service", {
      metadata,
      spec: { selector: DISPATCHER_LABELS, ports: [{ name: "http", port: 80, targetPort: k8s.IntOrString.fromString("http") }] },
    });
    new k8s.KubePodDisruptionBudget(this, "Budget", {
      metadata,
      spec: { minAvailable: k8s.IntOrString.fromNumber(1), selector: { matchLabels: DISPATCHER_LABELS } },
    });
  }
}
