// The platform chart's ValidatingAdmissionPolicy against the real API server: under the
// dispatcher's ServiceAccount token (TokenRequest, as its pod mounts), a Job whose pod
// would read another Secret, the node's disk, another identity or run privileged is
// refused with the policy's message, on a real create and on a server-side dry run;
// every Job the TrainingJob construct renders is accepted; other users are not judged. With a
// pull secret configured, its Jobs may pull with that Secret and no other.
import {
  AdmissionregistrationV1Api,
  ApiException,
  BatchV1Api,
  KubeConfig,
  type KubernetesObject,
  PatchStrategy,
  setHeaderOptions,
  type V1Job,
} from "@kubernetes/client-node";
import { App } from "cdk8s";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { trainingJobName } from "../../charts-ts/labels.ts";
import { dispatcherJobPolicyName } from "../../charts-ts/platform/dispatcher-job-policy.ts";
import { PlatformChart } from "../../charts-ts/platform/platform-chart.ts";
import { trainingRequest } from "../../charts-ts/request.ts";
import { SAMPLE_REQUESTS } from "../../charts-ts/samples.ts";
import { type PlatformSettings, platformSettings } from "../../charts-ts/settings.ts";
import { renderTrainingJob } from "../../charts-ts/training-job-chart.ts";
import { loadConfig } from "../../dispatcher/config.ts";
import { KubernetesExecutor } from "../../dispatcher/executors/kubernetes-executor.ts";
import { applyObjects, applyPlatform, distObjects } from "./platform.ts";
import { serviceAccountConfig } from "./service-account.ts";
import { until } from "./until.ts";

const admin = new KubeConfig();
admin.loadFromFile(inject("kubeconfig"));
const platform = platformSettings({});
const NAMESPACE = platform.namespace;
const RUN = `p${Date.now().toString(36)}`;
let nextJobId = (Date.now() % 1_000_000) * 100 + 60;

const serviceAccount = distObjects("platform.k8s.yaml").find((object) => object.kind === "ServiceAccount")?.metadata?.name as string;
const policyName = dispatcherJobPolicyName(serviceAccount, NAMESPACE);
let dispatcherConfig: KubeConfig;
let dispatcher: BatchV1Api;
let executor: KubernetesExecutor;
const adminBatch = admin.makeApiClient(BatchV1Api);

beforeAll(async () => {
  await applyPlatform(admin);
  dispatcherConfig = await serviceAccountConfig(admin, NAMESPACE, serviceAccount);
  dispatcher = dispatcherConfig.makeApiClient(BatchV1Api);
  executor = new KubernetesExecutor({ kubeConfig: dispatcherConfig, platform });
  const hostPath = tampered((pod) => pod.volumes?.push({ name: "host", hostPath: { path: "/" } }));
  await policyInForce(async () => (await executor.verdictOn(hostPath as never)).message?.includes("emptyDir volumes only"));
});

/**
 * Waits until the stored policy is the one the API server judges by: its type check has
 * caught up with this generation (writing that status makes the API server load the policy
 * again, and Jobs created meanwhile were seen to pass unjudged), and `judged` sees its verdict.
 */
async function policyInForce(judged: () => Promise<boolean | undefined>): Promise<void> {
  const policies = admin.makeApiClient(AdmissionregistrationV1Api);
  await until(`policy ${policyName} in force`, async () => {
    const policy = await policies.readValidatingAdmissionPolicy({ name: policyName });
    return policy.status?.observedGeneration === policy.metadata?.generation && (await judged());
  });
}
afterAll(async () => {
  const jobs = await adminBatch.listNamespacedJob({ namespace: NAMESPACE, labelSelector: `test-run=${RUN}` });
  await Promise.all(
    jobs.items.map((job) =>
      adminBatch.deleteNamespacedJob({ name: job.metadata?.name ?? "", namespace: NAMESPACE, propagationPolicy: "Background" }),
    ),
  );
});

/** A Job exactly as the dispatcher renders it, for a fresh jobId. */
function trainingJob(settings: PlatformSettings = platform): V1Job {
  const request = trainingRequest({
    jobId: ++nextJobId,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    resources: { gpu: 0 },
    labels: { "test-run": RUN },
  });
  return renderTrainingJob(request, settings) as V1Job;
}

type PodSpec = NonNullable<NonNullable<V1Job["spec"]>["template"]["spec"]>;
type Container = PodSpec["containers"][number];
const trainer = (pod: PodSpec) => pod.containers[0] as Container;

// Each change to the construct's pod, and the words the policy must refuse it with.
const attacks: [string, (pod: PodSpec) => void, string][] = [
  [
    "an env var from another Secret (the dispatcher's API token)",
    (pod) => trainer(pod).env?.push({ name: "STOLEN", valueFrom: { secretKeyRef: { name: "training-dispatcher", key: "api-token" } } }),
    "no Secret but r2-credentials",
  ],
  [
    "envFrom another Secret",
    (pod) => {
      trainer(pod).envFrom = [{ secretRef: { name: "training-dispatcher" } }];
    },
    "no Secret but r2-credentials",
  ],
  [
    "a Secret volume",
    (pod) => pod.volumes?.push({ name: "tokens", secret: { secretName: "training-dispatcher" } }),
    "emptyDir volumes only",
  ],
  [
    "a projected service account token",
    (pod) => pod.volumes?.push({ name: "token", projected: { sources: [{ serviceAccountToken: { path: "token" } }] } }),
    "emptyDir volumes only",
  ],
  ["a hostPath volume", (pod) => pod.volumes?.push({ name: "host", hostPath: { path: "/" } }), "emptyDir volumes only"],
  [
    "another ConfigMap",
    (pod) => trainer(pod).env?.push({ name: "OTHER", valueFrom: { configMapKeyRef: { name: "kube-root-ca.crt", key: "ca.crt" } } }),
    "no ConfigMap but backend-config",
  ],
  [
    "the dispatcher's ServiceAccount",
    (pod) => {
      pod.serviceAccountName = serviceAccount;
    },
    "no service account but the namespace's default",
  ],
  [
    "a mounted service account token",
    (pod) => {
      pod.automountServiceAccountToken = true;
    },
    "automountServiceAccountToken false",
  ],
  [
    "a privileged container",
    (pod) => {
      trainer(pod).securityContext = { privileged: true, capabilities: { drop: ["ALL"] } };
    },
    "no privileged container",
  ],
  [
    "an added capability",
    (pod) => {
      trainer(pod).securityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"], add: ["NET_ADMIN"] } };
    },
    "capabilities dropping ALL, adding none",
  ],
  [
    "privilege escalation allowed",
    (pod) => {
      trainer(pod).securityContext = { allowPrivilegeEscalation: true, capabilities: { drop: ["ALL"] } };
    },
    "allowPrivilegeEscalation false",
  ],
  [
    "running as root",
    (pod) => {
      pod.securityContext = { ...pod.securityContext, runAsNonRoot: false, runAsUser: 0 };
    },
    "runAsNonRoot true",
  ],
  [
    "the host's network",
    (pod) => {
      pod.hostNetwork = true;
    },
    "no hostNetwork, hostPID or hostIPC",
  ],
  [
    "an imagePullSecret naming another Secret (the dispatcher's tokens), with no pull secret configured",
    (pod) => {
      pod.imagePullSecrets = [{ name: "training-dispatcher" }];
    },
    "no imagePullSecrets",
  ],
  [
    "the object store's Secret as an imagePullSecret, with no pull secret configured",
    (pod) => {
      pod.imagePullSecrets = [{ name: "r2-credentials" }];
    },
    "no imagePullSecrets",
  ],
  [
    "an init container mounting another Secret's key",
    (pod) => {
      pod.initContainers = [
        { ...trainer(pod), name: "init", env: [{ name: "K", valueFrom: { secretKeyRef: { name: "other", key: "k" } } }] },
      ];
    },
    "no Secret but r2-credentials",
  ],
];

function tampered(change: (pod: PodSpec) => void, settings: PlatformSettings = platform): V1Job {
  const job = trainingJob(settings);
  change(job.spec?.template.spec as PodSpec);
  return job;
}

/** The API server's refusal of a call, or undefined when it succeeded. */
async function refusal(call: () => Promise<unknown>): Promise<{ code: number; message: string } | undefined> {
  try {
    await call();
    return undefined;
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    return { code: error.code, message: JSON.parse(error.body as string).message };
  }
}

describe("the dispatcher's ServiceAccount may create only TrainingJob-shaped Jobs", () => {
  it.each(attacks)("refuses %s, with the policy's message, on a create and on a dry run", async (_name, change, words) => {
    const job = tampered(change);
    const created = await refusal(() => dispatcher.createNamespacedJob({ namespace: NAMESPACE, body: job }));
    expect(created?.code).toBe(403);
    expect(created?.message).toContain(`ValidatingAdmissionPolicy '${policyName}'`);
    expect(created?.message).toContain(words);
    expect(await refusal(() => adminBatch.readNamespacedJob({ name: job.metadata?.name ?? "", namespace: NAMESPACE }))).toMatchObject({
      code: 404,
    });
    // The dispatcher's own dry run (POST /v1/jobs?dryRun=true) reports the same refusal.
    const verdict = await executor.verdictOn(job as never);
    expect(verdict).toMatchObject({ accepted: false, statusCode: 403 });
    expect(verdict.message).toContain(words);
  });

  it.each(Object.entries(SAMPLE_REQUESTS))("accepts the TrainingJob of sample %s", async (_name, sample) => {
    const verdict = await executor.verdictOn(renderTrainingJob(trainingRequest(sample), platform));
    expect(verdict).toEqual({ accepted: true });
  });

  it("accepts a real create of the construct's Job, and the dispatcher's stop (an update) of it", async () => {
    const job = trainingJob();
    await dispatcher.createNamespacedJob({ namespace: NAMESPACE, body: job });
    const jobId = Number(job.metadata?.labels?.["job-id"]);
    expect((await executor.stop(jobId))?.phase).toBe("stopped");
  });

  it("judges updates too: the ServiceAccount may not touch a Job of another shape", async () => {
    const job = tampered((pod) => pod.volumes?.push({ name: "host", hostPath: { path: "/" } }));
    if (job.spec) job.spec.suspend = true;
    await adminBatch.createNamespacedJob({ namespace: NAMESPACE, body: job });
    const patched = await refusal(() =>
      dispatcher.patchNamespacedJob(
        {
          name: trainingJobName(Number(job.metadata?.labels?.["job-id"])),
          namespace: NAMESPACE,
          body: { metadata: { annotations: { x: "y" } } },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      ),
    );
    expect(patched?.code).toBe(403);
    expect(patched?.message).toContain("emptyDir volumes only");
  });

  it("does not judge other users: an administrator's dry run of the same Job is accepted", async () => {
    const job = tampered((pod) => pod.volumes?.push({ name: "tokens", secret: { secretName: "training-dispatcher" } }));
    expect(await refusal(() => adminBatch.createNamespacedJob({ namespace: NAMESPACE, body: job, dryRun: "All" }))).toBeUndefined();
  });
});

describe("with a pull secret (and an object store Secret of its own) configured, the dispatcher's Jobs may name that one and no other", () => {
  const PULL_SECRET = "training-image-pull";
  const OBJECT_STORE_SECRET = "object-keys";
  const chart = new PlatformChart(new App(), "platform", {
    platform: { imagePullSecret: PULL_SECRET, objectStoreSecretName: OBJECT_STORE_SECRET },
  }).toJson() as KubernetesObject[];
  // The settings a dispatcher deployed by that chart renders with: read from its Deployment's environment, as it does.
  const deployment = chart.find((object) => object.kind === "Deployment") as KubernetesObject & {
    spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
  };
  const deployedEnv = Object.fromEntries(deployment.spec.template.spec.containers[0]?.env.map((entry) => [entry.name, entry.value]) ?? []);
  const withPullSecret = loadConfig({
    ...deployedEnv,
    DEFAULT_EXECUTOR: "local",
    DISPATCHER_API_TOKEN: "t",
    DISPATCHER_API_TOKEN_FILE: undefined,
    BACKEND_TOKEN_FILE: undefined,
  }).platform;
  const policyOf = (objects: readonly KubernetesObject[]) => objects.filter((object) => object.metadata?.name === policyName);
  let pullExecutor: KubernetesExecutor;
  /** The construct's Job, pulling with the configured secret: what a platform with one renders. */
  const pulling = () => trainingJob(withPullSecret);

  beforeAll(async () => {
    pullExecutor = new KubernetesExecutor({ kubeConfig: dispatcherConfig, platform: withPullSecret });
    await applyObjects(admin, policyOf(chart));
    const another = tampered((pod) => pod.imagePullSecrets?.push({ name: "training-dispatcher" }), withPullSecret);
    await policyInForce(async () => (await pullExecutor.verdictOn(another as never)).message?.includes(`but ${PULL_SECRET}`));
  });
  afterAll(async () => {
    await applyObjects(admin, policyOf(distObjects("platform.k8s.yaml")));
    // dist/'s Job shape, but pulling with the secret: only the pull secret rule can tell the two policies apart.
    const pullingByDefault = tampered((pod) => {
      pod.imagePullSecrets = [{ name: PULL_SECRET }];
    });
    await policyInForce(async () => {
      const { message = "" } = await executor.verdictOn(pullingByDefault as never);
      return message.includes("no imagePullSecrets") && !message.includes(`but ${PULL_SECRET}`);
    });
  });

  it.each(Object.entries(SAMPLE_REQUESTS))("accepts the TrainingJob of sample %s, pulling with it", async (_name, sample) => {
    const job = renderTrainingJob(trainingRequest(sample), withPullSecret);
    const pod = (job.spec as { template: { spec: PodSpec } }).template.spec;
    expect(pod.imagePullSecrets).toEqual([{ name: PULL_SECRET }]);
    expect(JSON.stringify(pod.containers)).toContain(`"name":"${OBJECT_STORE_SECRET}"`);
    expect(await pullExecutor.verdictOn(job)).toEqual({ accepted: true });
  });

  it("accepts a real create of such a Job under the ServiceAccount's token", async () => {
    const job = pulling();
    const created = await dispatcher.createNamespacedJob({ namespace: NAMESPACE, body: job });
    expect(created.spec?.template.spec?.imagePullSecrets).toEqual([{ name: PULL_SECRET }]);
  });

  const pullAttacks: [string, (pod: PodSpec) => void, string][] = [
    [
      "a second imagePullSecret naming another Secret (the dispatcher's tokens)",
      (pod) => pod.imagePullSecrets?.push({ name: "training-dispatcher" }),
      `no imagePullSecrets but ${PULL_SECRET}`,
    ],
    [
      "another Secret instead of the pull secret",
      (pod) => {
        pod.imagePullSecrets = [{ name: "r2-credentials" }];
      },
      `no imagePullSecrets but ${PULL_SECRET}`,
    ],
    [
      "the pull secret read into an env var",
      (pod) => trainer(pod).env?.push({ name: "REGISTRY", valueFrom: { secretKeyRef: { name: PULL_SECRET, key: ".dockerconfigjson" } } }),
      `no Secret but ${OBJECT_STORE_SECRET}`,
    ],
  ];

  it.each(pullAttacks)("refuses %s, on a create and on a dry run", async (_name, change, words) => {
    const job = tampered(change, withPullSecret);
    const created = await refusal(() => dispatcher.createNamespacedJob({ namespace: NAMESPACE, body: job }));
    expect(created?.code).toBe(403);
    expect(created?.message).toContain(`ValidatingAdmissionPolicy '${policyName}'`);
    expect(created?.message).toContain(words);
    const verdict = await pullExecutor.verdictOn(job as never);
    expect(verdict).toMatchObject({ accepted: false, statusCode: 403 });
    expect(verdict.message).toContain(words);
  });
});
