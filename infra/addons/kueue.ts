import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { HELM_CHARTS, pinnedRelease, type ReleaseSettings } from "../helm-charts.ts";

export interface KueueArgs {
  /**
   * The one namespace whose Jobs Kueue manages (the training namespace). Kueue's
   * Job webhooks (failurePolicy Fail) are scoped to it, so Jobs anywhere else
   * never wait on, or fail with, Kueue.
   */
  readonly managedNamespace: string;
  /**
   * Controller replicas. Each serves the webhooks (one leads the controllers), so
   * with 2 a node drain does not block the creation of training Jobs.
   * @default 2
   */
  readonly replicas?: number;
  /** @default the public chart, Helm waiting 600 s */
  readonly releases?: ReleaseSettings;
}

/** Where the chart runs Kueue: its own namespace, as upstream installs it. */
export const KUEUE_NAMESPACE = "kueue-system";

/** The image of the pinned chart's release (the chart's own appVersion), also when a local copy of the chart is installed. */
const KUEUE_IMAGE = { repository: "registry.k8s.io/kueue/kueue", tag: `v${HELM_CHARTS.kueue.version}`, pullPolicy: "IfNotPresent" };

/**
 * Kueue's manager configuration (`config.kueue.x-k8s.io/v1beta2`): the chart's
 * defaults, but only the `batch/job` integration, only Jobs that name a queue,
 * and only in the managed namespace.
 */
export function kueueConfiguration(managedNamespace: string): Record<string, unknown> {
  return {
    apiVersion: "config.kueue.x-k8s.io/v1beta2",
    kind: "Configuration",
    health: { healthProbeBindAddress: ":8081" },
    metrics: { bindAddress: ":8443" },
    webhook: { port: 9443 },
    leaderElection: { leaderElect: true, resourceName: "c1f6bfd2.kueue.x-k8s.io" },
    controller: {
      groupKindConcurrency: {
        "Job.batch": 5,
        "Workload.kueue.x-k8s.io": 5,
        "LocalQueue.kueue.x-k8s.io": 1,
        "ClusterQueue.kueue.x-k8s.io": 1,
        "ResourceFlavor.kueue.x-k8s.io": 1,
      },
    },
    clientConnection: { qps: 50, burst: 100 },
    // A Job without the queue label is left alone (the dispatcher labels every training Job).
    manageJobsWithoutQueueName: false,
    // The chart copies this selector onto the Job webhooks: other namespaces' Jobs never reach Kueue.
    managedJobsNamespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": managedNamespace } },
    // The chart's default also takes over pods, Deployments and StatefulSets cluster-wide, with failurePolicy Fail.
    integrations: { frameworks: ["batch/job"] },
  };
}

/** The chart's values for `kueueConfiguration(managedNamespace)` and `replicas` controllers. */
export function kueueValues(managedNamespace: string, replicas: number): Record<string, unknown> {
  return {
    controllerManager: {
      replicas,
      manager: {
        image: KUEUE_IMAGE,
        // Kueue keeps every Workload and queue in memory: a fixed memory limit equal to the request
        // (no overcommit for the component training Jobs cannot be created without); CPU may burst.
        resources: { requests: { cpu: "500m", memory: "1Gi" }, limits: { cpu: "2", memory: "1Gi" } },
      },
      podDisruptionBudget: { enabled: replicas > 1, minAvailable: 1 },
    },
    // The chart parses this YAML (JSON is YAML) to scope its webhooks, so it must stay one document.
    managerConfig: { controllerManagerConfigYaml: JSON.stringify(kueueConfiguration(managedNamespace), null, 2) },
  };
}

/**
 * Kueue from its official chart: CRDs, controller, webhooks and the visibility
 * API (pending workloads and their positions). The training queues are applied
 * after this release is ready, when its CRDs exist and its webhooks answer.
 * Destroying it deletes the CRDs, and with them every Kueue object.
 */
export class Kueue extends pulumi.ComponentResource {
  /** Ready once the CRDs exist and the controller serves the webhooks (Helm waits for the Deployment). */
  readonly release: k8s.helm.v3.Release;

  constructor(name: string, args: KueueArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:addons:Kueue", name, {}, opts);
    const namespace = new k8s.core.v1.Namespace(
      name,
      // The chart's controller already meets the restricted profile (non-root, RuntimeDefault seccomp, no capabilities).
      { metadata: { name: KUEUE_NAMESPACE, labels: { "pod-security.kubernetes.io/enforce": "restricted" } } },
      { parent: this },
    );
    this.release = pinnedRelease(
      name,
      "kueue",
      { namespace: KUEUE_NAMESPACE, values: kueueValues(args.managedNamespace, args.replicas ?? 2) },
      args.releases ?? {},
      { parent: this, dependsOn: [namespace] },
    );
    this.registerOutputs({ namespace: KUEUE_NAMESPACE });
  }
}
