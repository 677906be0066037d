import { Testing } from "cdk8s";
import { describe, expect, it } from "vitest";
import { PlatformChart } from "../../charts-ts/platform/platform-chart.ts";

// biome-ignore lint/suspicious/noExplicitAny: structural assertions on free-form JSON
type Json = any;

const objects: Json[] = Testing.synth(new PlatformChart(Testing.app(), "platform"));
const find = (kind: string, name?: string): Json => {
  const found = objects.find((object) => object.kind === kind && (name === undefined || object.metadata.name === name));
  if (!found) throw new Error(`no ${kind} ${name ?? ""}`);
  return found;
};

describe("PlatformChart", () => {
  it("creates the training namespace under the restricted pod security profile", () => {
    const namespace = find("Namespace");
    expect(namespace.metadata.name).toBe("training");
    expect(namespace.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
  });

  it("grants the dispatcher exactly what it uses: its namespace's objects, and only to read nodes and its Namespace beyond it", () => {
    const role = find("Role");
    expect(role.metadata.namespace).toBe("training");
    expect(role.rules).toEqual([
      { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "get", "list", "watch", "delete", "patch"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["create"] },
      { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
      { apiGroups: [""], resources: ["events"], verbs: ["list", "watch"] },
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
    ]);
    const subjects = [{ kind: "ServiceAccount", name: find("ServiceAccount").metadata.name, namespace: "training" }];
    const binding = find("RoleBinding");
    expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name });
    expect(binding.subjects).toEqual(subjects);
    const clusterRoles = objects.filter((object) => object.kind === "ClusterRole");
    expect(clusterRoles.map((clusterRole) => clusterRole.rules)).toEqual([
      [
        { apiGroups: [""], resources: ["nodes"], verbs: ["list", "watch"] },
        { apiGroups: [""], resources: ["namespaces"], verbs: ["get"], resourceNames: ["training"] },
      ],
    ]);
    const clusterBinding = find("ClusterRoleBinding");
    expect(clusterBinding.roleRef).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: clusterRoles[0].metadata.name,
    });
    expect(clusterBinding.subjects).toEqual(subjects);
    // Pod create is for dry runs only: an admission policy refuses the ServiceAccount any real one.
    const policy = find("ValidatingAdmissionPolicy");
    expect(policy.spec.matchConditions).toEqual([
      {
        name: "created-by-the-dispatcher",
        expression: 'request.userInfo.username == "system:serviceaccount:training:training-dispatcher"',
      },
    ]);
    expect(policy.spec.validations.map((validation: Json) => validation.expression)).toEqual(["request.dryRun == true"]);
    expect(find("ValidatingAdmissionPolicyBinding").spec).toMatchObject({ policyName: policy.metadata.name, validationActions: ["Deny"] });
  });

  it("names its cluster-wide RBAC after the namespace, so two platforms do not share it", () => {
    const names = (namespace: string) =>
      Testing.synth(new PlatformChart(Testing.app(), "platform", { platform: { namespace } }))
        .filter((object: Json) => object.kind.startsWith("Cluster"))
        .map((object: Json) => object.metadata.name);
    expect(names("team-a")).toEqual(["training-dispatcher-nodes-team-a", "training-dispatcher-nodes-team-a"]);
    expect(names("team-a")).not.toEqual(names("team-b"));
  });

  it("holds the dispatcher's ServiceAccount, and only it, to TrainingJob-shaped Jobs, with names from the platform settings", () => {
    const platform = { namespace: "team-a", objectStoreSecretName: "object-keys", backendConfigMapName: "backend-urls" };
    const chart: Json[] = Testing.synth(new PlatformChart(Testing.app(), "platform", { platform }));
    const named = (kind: string) =>
      chart.find((object) => object.kind === kind && object.metadata.name === "training-dispatcher-jobs-team-a");
    const policy = named("ValidatingAdmissionPolicy");
    const binding = named("ValidatingAdmissionPolicyBinding");
    expect(policy.apiVersion).toBe("admissionregistration.k8s.io/v1");
    expect(binding.spec).toEqual({ policyName: policy.metadata.name, validationActions: ["Deny"] });
    expect(policy.spec.failurePolicy).toBe("Fail");
    expect(policy.spec.matchConstraints.resourceRules).toEqual([
      { apiGroups: ["batch"], apiVersions: ["v1"], operations: ["CREATE", "UPDATE"], resources: ["jobs"] },
    ]);
    expect(policy.spec.matchConditions).toEqual([
      { name: "dispatcher-service-account", expression: 'request.userInfo.username == "system:serviceaccount:team-a:training-dispatcher"' },
    ]);
    const rules = JSON.stringify(policy.spec.validations);
    expect(rules).toContain('\\"object-keys\\"');
    expect(rules).toContain('\\"backend-urls\\"');
    expect(rules).not.toContain("r2-credentials");
    expect(rules).not.toContain("backend-config");
  });

  it("tells the dispatcher the declared GPU pools' node sizes, and refuses a bad one at synth", () => {
    const envOf = (props: ConstructorParameters<typeof PlatformChart>[2]) => {
      const deployment = Testing.synth(new PlatformChart(Testing.app(), "platform", props)).find(
        (object: Json) => object.kind === "Deployment",
      );
      return Object.fromEntries(deployment.spec.template.spec.containers[0].env.map((entry: Json) => [entry.name, entry.value]));
    };
    expect(envOf({}).GPU_NODE_CAPACITY).toBeUndefined();
    expect(envOf({ gpuNodeCapacity: { t4: 1, a100: 8 } }).GPU_NODE_CAPACITY).toBe("a100=8,t4=1");
    expect(() => envOf({ gpuNodeCapacity: { t4: 0 } })).toThrow('gpuNodeCapacity: "t4=0" is not <gpu-type>=<GPUs per node>');
    expect(() => envOf({ gpuNodeCapacity: { T4: 1 } })).toThrow('gpuNodeCapacity: "T4=1"');
    expect(() => envOf({ gpuNodeCapacity: {} })).toThrow("gpuNodeCapacity is empty");
  });

  it("runs the dispatcher image of one build: the configured tag, pinned by digest when given", () => {
    const imageOf = (props: ConstructorParameters<typeof PlatformChart>[2]) =>
      Testing.synth(new PlatformChart(Testing.app(), "platform", props)).find((object: Json) => object.kind === "Deployment").spec.template
        .spec.containers[0].image;
    const digest = `sha256:${"ab".repeat(32)}`;
    expect(imageOf({ platform: { registry: "ghcr.io/acme", trainerImageVersion: "3f2c1d0" } })).toBe(
      "ghcr.io/acme/training-dispatcher:3f2c1d0",
    );
    expect(imageOf({ platform: { registry: "ghcr.io/acme" }, dispatcherImage: { tag: "9e8d7c6", digest } })).toBe(
      `ghcr.io/acme/training-dispatcher:9e8d7c6@${digest}`,
    );
    expect(() => imageOf({ dispatcherImage: { tag: "9e8d7c6", digest: "sha256:short" } })).toThrow(
      'dispatcher image digest: must be sha256:<64 lower-case hex digits>, not "sha256:short"',
    );
  });

  it("pulls the dispatcher with the platform's pull secret, and tells the dispatcher to give its Jobs the same", () => {
    const deploymentOf = (props: ConstructorParameters<typeof PlatformChart>[2]) =>
      Testing.synth(new PlatformChart(Testing.app(), "platform", props)).find((object: Json) => object.kind === "Deployment");
    const env = (deployment: Json) =>
      Object.fromEntries(deployment.spec.template.spec.containers[0].env.map((entry: Json) => [entry.name, entry.value]));
    const without = deploymentOf({});
    expect(without.spec.template.spec.imagePullSecrets).toBeUndefined();
    expect(env(without).TRAINER_IMAGE_PULL_SECRET).toBeUndefined();
    // The Job settings the policy is built from reach the dispatcher too, so its Jobs pass that policy.
    expect(env(deploymentOf({ platform: { objectStoreSecretName: "object-keys" } })).OBJECT_STORE_SECRET).toBe("object-keys");
    expect(env(without).OBJECT_STORE_SECRET).toBeUndefined();
    const withSecret = deploymentOf({ platform: { imagePullSecret: "registry-login" } });
    expect(withSecret.spec.template.spec.imagePullSecrets).toEqual([{ name: "registry-login" }]);
    expect(env(withSecret).TRAINER_IMAGE_PULL_SECRET).toBe("registry-login");
  });

  it("lets the dispatcher's Jobs name the configured pull secret and no other; none at all when none is configured", () => {
    const pullSecretRule = (platform: Json) => {
      const chart: Json[] = Testing.synth(new PlatformChart(Testing.app(), "platform", { platform }));
      const policy = chart.find((object) => object.kind === "ValidatingAdmissionPolicy" && object.metadata.name.includes("-jobs-"));
      return policy.spec.validations.find((validation: Json) => validation.expression.includes("imagePullSecrets"));
    };
    expect(pullSecretRule({})).toMatchObject({
      expression: "size(variables.pod.?imagePullSecrets.orValue([])) == 0",
      message: "Jobs of the training dispatcher must have the TrainingJob's shape: no imagePullSecrets",
    });
    expect(pullSecretRule({ imagePullSecret: "registry-login" })).toMatchObject({
      expression: 'variables.pod.?imagePullSecrets.orValue([]).all(s, s.?name.orValue("") == "registry-login")',
      message: "Jobs of the training dispatcher must have the TrainingJob's shape: no imagePullSecrets but registry-login",
    });
  });

  it("caps GPUs and defaults container resources", () => {
    expect(find("ResourceQuota").spec.hard["requests.nvidia.com/gpu"]).toBe(16);
    const limits = find("LimitRange").spec.limits[0];
    expect(limits.type).toBe("Container");
    expect(limits.defaultRequest).toEqual({ cpu: "500m", memory: "1Gi" });
  });

  it("takes quota sizes from props", () => {
    const sized: Json[] = Testing.synth(new PlatformChart(Testing.app(), "platform", { quota: { maxGpus: 64, maxJobs: 50 } }));
    expect(sized.find((object) => object.kind === "ResourceQuota").spec.hard).toEqual({
      "requests.nvidia.com/gpu": 64,
      "count/jobs.batch": 50,
    });
  });

  it("defines the three priority classes requests name", () => {
    const classes = objects.filter((object) => object.kind === "PriorityClass");
    expect(classes.map((priorityClass) => [priorityClass.metadata.name, priorityClass.value, priorityClass.preemptionPolicy])).toEqual([
      ["training-high", 1000, "PreemptLowerPriority"],
      ["training-default", 500, "PreemptLowerPriority"],
      ["training-low", 100, "Never"],
    ]);
    expect(classes.every((priorityClass) => priorityClass.globalDefault === false)).toBe(true);
  });

  it("shuts trainer pods off from ingress and lets them reach only DNS, object store, backend and MLflow", () => {
    const policy = find("NetworkPolicy");
    expect(policy.spec.podSelector).toEqual({ matchLabels: { app: "training-job" } });
    expect(policy.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy.spec.ingress).toBeUndefined();
    const [dns, objectStore, backend, mlflow] = policy.spec.egress;
    expect(policy.spec.egress).toHaveLength(4);
    expect(dns.ports).toEqual([
      { protocol: "UDP", port: 53 },
      { protocol: "TCP", port: 53 },
    ]);
    expect(objectStore.ports).toEqual([{ protocol: "TCP", port: 443 }]);
    expect(objectStore.to[0].ipBlock.except).toContain("169.254.0.0/16");
    expect(backend.to[0].namespaceSelector.matchLabels).toEqual({ "kubernetes.io/metadata.name": "backend" });
    expect(backend.ports).toEqual([{ protocol: "TCP", port: 8000 }]);
    expect(mlflow.ports).toEqual([{ protocol: "TCP", port: 5000 }]);
  });

  it("runs the dispatcher non-root with probes, resources and a disruption budget", () => {
    const deployment = find("Deployment");
    const pod = deployment.spec.template.spec;
    const [container] = pod.containers;
    expect(pod.serviceAccountName).toBe(find("ServiceAccount").metadata.name);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
    expect(container.livenessProbe.httpGet.path).toBe("/healthz");
    expect(container.resources.requests).toEqual({ cpu: "100m", memory: "256Mi" });
    expect(container.image).toBe("ghcr.io/myorg/training-dispatcher:v1.0");
    // Tokens come from a mounted Secret, never from a literal in the manifest.
    expect(container.env.map((env: Json) => env.name)).not.toContain("DISPATCHER_API_TOKEN");
    expect(pod.volumes[0].secret.secretName).toBe("training-dispatcher");
    expect(find("Service").spec.selector).toEqual(deployment.spec.selector.matchLabels);
    const budget = find("PodDisruptionBudget");
    expect(budget.spec.minAvailable).toBe(1);
    expect(budget.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(deployment.spec.replicas).toBeGreaterThan(budget.spec.minAvailable);
  });
});
