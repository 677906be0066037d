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
    this.policy("PodsDryRunOnly", props.namespace, {
      name: `${this.serviceAccountName}-pods-dry-run-only-${props.namespace}`,
      rule: { apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"] },
      condition: "created-by-the-dispatcher",
      validation: {
        expression: "request.dryRun == true",
        message: "the training dispatcher may only dry-run pods; its trainers' pods come from its Jobs",
        reason: "Forbidden",
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
    const unchanged = (path: string) => `object.${path} == oldObject.${path}`;
    this.policy("WorkloadsDeactivateOnly", namespace, {
      name: `${this.serviceAccountName}-workloads-deactivate-only-${namespace}`,
      rule: { apiGroups: ["kueue.x-k8s.io"], apiVersions: ["*"], operations: ["UPDATE"], resources: ["workloads"] },
      condition: "changed-by-the-dispatcher",
      validation: {
        expression: [
          ...["podSets", "?queueName", "?priorityClassRef", "?priority", "?maximumExecutionTimeSeconds", "?preemptionGates"].map((field) =>
            unchanged(`spec.${field}`),
          ),
          ...["?labels", "?annotations", "?finalizers", "?ownerReferences"].map((field) => unchanged(`metadata.${field}`)),
          "(object.spec.?active.orValue(true) == false || oldObject.spec.?active.orValue(true) == true)",
        ].join(" && "),
        message: "the training dispatcher may only deactivate a Workload (spec.active false), nothing else",
        reason: "Forbidden",
      },
    });
  }

  /**
   * A ValidatingAdmissionPolicy, and its binding to the namespace, that holds this ServiceAccount's
   * requests on one kind of object to `validation`: what RBAC grants in whole, admission narrows.
   */
  private policy(
    id: string,
    namespace: string,
    props: { name: string; rule: k8s.NamedRuleWithOperations; condition: string; validation: k8s.Validation },
  ): void {
    const metadata = { name: props.name };
    new k8s.KubeValidatingAdmissionPolicy(this, id, {
      metadata,
      spec: {
        failurePolicy: "Fail",
        matchConstraints: { resourceRules: [props.rule] },
        matchConditions: [
          {
            name: props.condition,
            expression: `request.userInfo.username == "system:serviceaccount:${namespace}:${this.serviceAccountName}"`,
          },
        ],
        validations: [props.validation],
      },
    });
    new k8s.KubeValidatingAdmissionPolicyBinding(this, `${id}Binding`, {
      metadata,
      spec: {
        policyName: props.name,
        validationActions: ["Deny"],
        matchResources: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } } },
      },
    });
  }
}
