import { k8s } from "cdk8s-plus-33";
import { Construct } from "constructs";
import { QUEUE_NAME_LABEL } from "../kueue-contract.ts";
import type { PlatformSettings } from "../settings.ts";

export interface DispatcherJobPolicyProps {
  /** The settings TrainingJobs are rendered with: namespace, the trainer's Secret and ConfigMap, the pull secret. */
  readonly platform: PlatformSettings;
  /** The dispatcher's ServiceAccount, whose Jobs the policy judges. */
  readonly serviceAccountName: string;
}

/** A CEL string literal (JSON's quoting is CEL's for the names Kubernetes allows). */
const cel = (value: string) => JSON.stringify(value);

/**
 * What a Job the dispatcher's ServiceAccount creates or updates must look like: the TrainingJob
 * construct's pod shape. RBAC cannot say this: whoever may create Jobs may run a pod that mounts
 * any Secret of the namespace (the dispatcher's own token, the backend token), or the node's disk.
 * The first rule that fails is the one the API server answers with; each names what it allows.
 */
export function dispatcherJobRules(platform: PlatformSettings): k8s.Validation[] {
  const secret = cel(platform.objectStoreSecretName);
  /** A validation that holds when every condition does. */
  const rule = (message: string, ...conditions: string[]): k8s.Validation => ({
    expression: conditions.join(" && "),
    message: `Jobs of the training dispatcher must have the TrainingJob's shape: ${message}`,
    reason: "Forbidden",
  });
  // `x.?f.orValue(d)` reads an absent field as d, so each rule covers "unset" and "set" at once.
  const everyContainer = (...conditions: string[]) => `variables.containers.all(c, ${conditions.join(" && ")})`;
  /** Every env and envFrom reference of one kind (Secret, ConfigMap) names `name`. */
  const onlyReferenced = (keyRef: string, fromRef: string, name: string) =>
    everyContainer(
      `c.?env.orValue([]).all(e, e.?valueFrom.?${keyRef}.?name.orValue(${name}) == ${name})`,
      `c.?envFrom.orValue([]).all(s, s.?${fromRef}.?name.orValue(${name}) == ${name})`,
    );
  return [
    rule("no privileged container", everyContainer("!c.?securityContext.?privileged.orValue(false)")),
    rule(
      "emptyDir volumes only (no hostPath, secret, projected, configMap, persistentVolumeClaim or other volume)",
      "variables.pod.?volumes.orValue([]).all(v, has(v.emptyDir))",
    ),
    rule(`no Secret but ${platform.objectStoreSecretName}`, onlyReferenced("secretKeyRef", "secretRef", secret)),
    // The kubelet reads a pull secret with its own rights, so naming another Secret here would hand
    // that Secret's registry credentials (or try the dispatcher's tokens as some) to a pod.
    platform.imagePullSecret === undefined
      ? rule("no imagePullSecrets", "size(variables.pod.?imagePullSecrets.orValue([])) == 0")
      : rule(
          `no imagePullSecrets but ${platform.imagePullSecret}`,
          `variables.pod.?imagePullSecrets.orValue([]).all(s, s.?name.orValue("") == ${cel(platform.imagePullSecret)})`,
        ),
    rule(
      `no ConfigMap but ${platform.backendConfigMapName}`,
      onlyReferenced("configMapKeyRef", "configMapRef", cel(platform.backendConfigMapName)),
    ),
    rule(
      "no service account but the namespace's default",
      'variables.pod.?serviceAccountName.orValue("default") == "default"',
      'variables.pod.?serviceAccount.orValue("default") == "default"',
    ),
    rule("automountServiceAccountToken false", "!variables.pod.?automountServiceAccountToken.orValue(true)"),
    rule(
      "no hostNetwork, hostPID or hostIPC",
      "!variables.pod.?hostNetwork.orValue(false)",
      "!variables.pod.?hostPID.orValue(false)",
      "!variables.pod.?hostIPC.orValue(false)",
    ),
    rule(
      "runAsNonRoot true for the pod, and no container overriding it",
      "variables.pod.?securityContext.?runAsNonRoot.orValue(false)",
      everyContainer("c.?securityContext.?runAsNonRoot.orValue(true)"),
    ),
    rule(
      "every container with allowPrivilegeEscalation false and capabilities dropping ALL, adding none",
      everyContainer(
        "!c.?securityContext.?allowPrivilegeEscalation.orValue(true)",
        '"ALL" in c.?securityContext.?capabilities.?drop.orValue([])',
        "size(c.?securityContext.?capabilities.?add.orValue([])) == 0",
      ),
    ),
    ...(platform.queueing ? [queueingRule(rule)] : []),
  ];
}

/**
 * With queueing on, Kueue's quotas are the dispatcher's limit: a Job that skipped its queue (no
 * queue label, not suspended), left it, or was unsuspended by the dispatcher itself would run
 * without admission. Only Kueue unsuspends, under its own identity, which this policy does not judge.
 */
function queueingRule(rule: (message: string, ...conditions: string[]) => k8s.Validation): k8s.Validation {
  const queue = (object: string) => `${object}.metadata.?labels[?${cel(QUEUE_NAME_LABEL)}].orValue("")`;
  const suspended = (object: string) => `${object}.spec.?suspend.orValue(false)`;
  return rule(
    `queued by Kueue: created suspended with the label ${QUEUE_NAME_LABEL}, which never changes, and never unsuspended but by Kueue`,
    `request.operation == "CREATE" ? (${queue("object")} != "" && ${suspended("object")}) : ` +
      `(${queue("object")} == ${queue("oldObject")} && (${suspended("object")} || !${suspended("oldObject")}))`,
  );
}

/** The policy's and its binding's name: cluster-scoped, so the namespace keeps two platforms' apart. */
export function dispatcherJobPolicyName(serviceAccountName: string, namespace: string): string {
  return `${serviceAccountName}-jobs-${namespace}`;
}

/**
 * A ValidatingAdmissionPolicy and its binding that hold the dispatcher's ServiceAccount to
 * TrainingJob-shaped Jobs in its namespace (creates and updates); other users are not judged.
 */
export class DispatcherJobPolicy extends Construct {
  constructor(scope: Construct, id: string, props: DispatcherJobPolicyProps) {
    super(scope, id);
    const { namespace } = props.platform;
    const name = dispatcherJobPolicyName(props.serviceAccountName, namespace);
    new k8s.KubeValidatingAdmissionPolicy(this, "Policy", {
      metadata: { name },
      spec: {
        failurePolicy: "Fail",
        matchConstraints: {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } },
          resourceRules: [{ apiGroups: ["batch"], apiVersions: ["v1"], operations: ["CREATE", "UPDATE"], resources: ["jobs"] }],
        },
        matchConditions: [
          {
            name: "dispatcher-service-account",
            expression: `request.userInfo.username == ${cel(`system:serviceaccount:${namespace}:${props.serviceAccountName}`)}`,
          },
        ],
        variables: [
          { name: "pod", expression: "object.spec.template.spec" },
          { name: "containers", expression: "variables.pod.containers + variables.pod.?initContainers.orValue([])" },
        ],
        validations: dispatcherJobRules(props.platform),
      },
    });
    new k8s.KubeValidatingAdmissionPolicyBinding(this, "Binding", {
      metadata: { name },
      spec: { policyName: name, validationActions: ["Deny"] },
    });
  }
}
