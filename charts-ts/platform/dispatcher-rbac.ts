import { k8s } from "cdk8s-plus-33";
import { Construct } from "constructs";

export interface DispatcherRbacProps {
  /** Namespace the dispatcher runs in and manages Jobs in. */
  readonly namespace: string;
  /**
   * ServiceAccount name.
   * @default "training-dispatcher"
   */
  readonly serviceAccountName?: string;
  /**
   * Jobs are queued by Kueue (the platform setting `queueing`): add DISPATCHER_QUEUEING_RULES.
   * @default false
   */
  readonly queueing?: boolean;
}

/**
 * The dispatcher's identity and the least it needs in its namespace: Jobs to submit,
 * watch, stop (suspend patch) and delete; Pods, their logs and Events to derive status;
 * a Lease so only one replica delivers status callbacks; and `create` on Pods for one
 * thing only, the server-side dry run of a Job's pod at submit (a Job's own dry run does
 * not run pod admission: quota, LimitRange, Pod Security). RBAC cannot say "dry run only";
 * the ValidatingAdmissionPolicy below does, so the grant is no way around what Jobs may run.
 */
export const DISPATCHER_RULES: readonly k8s.PolicyRule[] = [
  { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "get", "list", "watch", "delete", "patch"] },
  { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
  { apiGroups: [""], resources: ["pods"], verbs: ["create"] },
  { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
  { apiGroups: [""], resources: ["events"], verbs: ["list", "watch"] },
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
];

/**
 * With queueing on: read the LocalQueues (submit refuses a project without one), find a Job's
 * Workload and deactivate it (stop, fail-fast: Kueue owns the Job's `suspend`), and read a queue's
 * pending workloads with their positions from Kueue's visibility API. Workloads' status (admission)
 * stays Kueue's: `patch` on `workloads` does not reach the `workloads/status` subresource.
 */
export const DISPATCHER_QUEUEING_RULES: readonly k8s.PolicyRule[] = [
  { apiGroups: ["kueue.x-k8s.io"], resources: ["workloads"], verbs: ["get", "list", "watch", "patch"] },
  { apiGroups: ["kueue.x-k8s.io"], resources: ["localqueues"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["visibility.kueue.x-k8s.io"], resources: ["localqueues/pendingworkloads"], verbs: ["get"] },
];

/**
 * Cluster-wide and read-only: the GPU nodes' sizes, so a job larger than any node fails
 * at once instead of queueing forever; and its own Namespace, so readiness can tell
 * "the platform chart is not applied" from "the API server is down".
 */
export function dispatcherClusterRules(namespace: string): k8s.PolicyRule[] {
  return [
    { apiGroups: [""], resources: ["nodes"], verbs: ["list", "watch"] },
    { apiGroups: [""], resources: ["namespaces"], verbs: ["get"], resourceNames: [namespace] },
  ];
}

export class DispatcherRbac extends Construct {
  readonly serviceAccountName: string;

  constructor(scope: Construct, id: string, props: DispatcherRbacProps) {
    super(scope, id);
    this.serviceAccountName = props.serviceAccountName ?? "training-dispatcher";
    const metadata = { name: this.serviceAccountName, namespace: props.namespace };
    new k8s.KubeServiceAccount(this, "ServiceAccount", { metadata, automountServiceAccountToken: true });
    new k8s.KubeRole(this, "Role", {
      metadata,
      rules: [...DISPATCHER_RULES, ...(props.queueing ? DISPATCHER_QUEUEING_RULES : [])],
    });
    new k8s.KubeRoleBinding(this, "RoleBinding", {
      metadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: this.serviceAccountName },
      subjects: [{ kind: "ServiceAccount", name: this.serviceAccountName, namespace: props.namespace }],
    });
    // Cluster-scoped names are shared by every namespace's platform: the namespace keeps them apart.
    const clusterMetadata = { name: `${this.serviceAccountName}-nodes-${props.namespace}` };
    new k8s.KubeClusterRole(this, "NodeReader", { metadata: clusterMetadata, rules: dispatcherClusterRules(props.namespace) });
    // Any pod the dispatcher creates for real is refused: its pods are its Jobs', made by the Job controller.
    const dryRunOnly = { name: `${this.serviceAccountName}-pods-dry-run-only-${props.namespace}` };
    new k8s.KubeValidatingAdmissionPolicy(this, "PodsDryRunOnly", {
      metadata: dryRunOnly,
      spec: {
        failurePolicy: "Fail",
        matchConstraints: {
          resourceRules: [{ apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"] }],
        },
        matchConditions: [
          {
            name: "created-by-the-dispatcher",
            expression: `request.userInfo.username == "system:serviceaccount:${props.namespace}:${this.serviceAccountName}"`,
          },
        ],
        validations: [
          {
            expression: "request.dryRun == true",
            message: "the training dispatcher may only dry-run pods; its trainers' pods come from its Jobs",
            reason: "Forbidden",
          },
        ],
      },
    });
    new k8s.KubeValidatingAdmissionPolicyBinding(this, "PodsDryRunOnlyBinding", {
      metadata: dryRunOnly,
      spec: {
        policyName: dryRunOnly.name,
        validationActions: ["Deny"],
        matchResources: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": props.namespace } } },
      },
    });
    if (props.queueing) this.workloadsDeactivateOnly(props.namespace);
    new k8s.KubeClusterRoleBinding(this, "NodeReaderBinding", {
      metadata: clusterMetadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterMetadata.name },
      subjects: [{ kind: "ServiceAccount", name: this.serviceAccountName, namespace: props.namespace }],
    });
  }

  /**
   * `patch` on Workloads is for one thing: deactivating a stopped Job's Workload. Any other change
   * (its pod sets' requests, its queue or priority, reactivating a stopped job, Kueue's finalizer,
   * labels or owner) would reach around Kueue's quotas, so admission refuses it to the ServiceAccount.
   */
  private workloadsDeactivateOnly(namespace: string): void {
    const metadata = { name: `${this.serviceAccountName}-workloads-deactivate-only-${namespace}` };
    const unchanged = (path: string) => `object.${path} == oldObject.${path}`;
    new k8s.KubeValidatingAdmissionPolicy(this, "WorkloadsDeactivateOnly", {
      metadata,
      spec: {
        failurePolicy: "Fail",
        matchConstraints: {
          resourceRules: [{ apiGroups: ["kueue.x-k8s.io"], apiVersions: ["*"], operations: ["UPDATE"], resources: ["workloads"] }],
        },
        matchConditions: [
          {
            name: "changed-by-the-dispatcher",
            expression: `request.userInfo.username == "system:serviceaccount:${namespace}:${this.serviceAccountName}"`,
          },
        ],
        validations: [
          {
            expression: [
              ...["podSets", "?queueName", "?priorityClassRef", "?priority", "?maximumExecutionTimeSeconds", "?preemptionGates"].map(
                (field) => unchanged(`spec.${field}`),
              ),
              ...["?labels", "?annotations", "?finalizers", "?ownerReferences"].map((field) => unchanged(`metadata.${field}`)),
              "(object.spec.?active.orValue(true) == false || oldObject.spec.?active.orValue(true) == true)",
            ].join(" && "),
            message: "the training dispatcher may only deactivate a Workload (spec.active false), nothing else",
            reason: "Forbidden",
          },
        ],
      },
    });
    new k8s.KubeValidatingAdmissionPolicyBinding(this, "WorkloadsDeactivateOnlyBinding", {
      metadata,
      spec: {
        policyName: metadata.name,
        validationActions: ["Deny"],
        matchResources: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } } },
      },
    });
  }
}
