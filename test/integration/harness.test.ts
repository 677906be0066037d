// Proves the integration-test cluster (test/cluster/) is a real Kubernetes
// control plane: real scheduler, real Job controller, real garbage collector and
// real API validation, with kwok simulating the nodes and the containers' fate
// (see test/cluster/kwok-stages.yaml for the kwok-* pod label contract), and
// kwok's kubelet-like server answering pods/log (test/cluster/kwok-logs.yaml).
import {
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  type V1Job,
  type V1JobCondition,
  type V1Pod,
  type V1PodFailurePolicy,
  VersionApi,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";

const NAMESPACE = "training";
const RUN_ID = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const RUN_LABEL = "harness-test-run";
const POLL_TIMEOUT_MS = 60_000;
/** What pods/log returns for a "trainer" container: test/cluster/trainer.log without the CRI prefixes (kwok-logs.yaml). */
const TRAINER_LOG_LINES = [
  "starting training: model=resnet18 dataset=cifar10 epochs=3 batch_size=128 gpus=1",
  "warning: no checkpoint found in /workspace/checkpoints, starting from scratch",
  "epoch 1/3 loss=1.600 accuracy=0.280",
  "epoch 2/3 loss=1.100 accuracy=0.540",
  "epoch 3/3 loss=0.800 accuracy=0.710",
  "saved model to /workspace/output/model.pt",
  "training finished in 92.5s",
];

const kc = new KubeConfig();
kc.loadFromFile(inject("kubeconfig"));
const batch = kc.makeApiClient(BatchV1Api);
const core = kc.makeApiClient(CoreV1Api);

let seq = 0;
/** A Job name unique across tests and runs (Job names must be DNS labels <= 63). */
function jobName(prefix: string): string {
  seq += 1;
  return `${prefix}-${RUN_ID}-${seq}`;
}

function httpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** The API server's Status message carried by an ApiException. */
function statusMessage(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  const parsed: unknown = typeof body === "string" ? safeJson(body) : body;
  const message = (parsed as { message?: unknown } | null)?.message;
  return typeof message === "string" ? message : String(body ?? err);
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

/** Polls until `probe` returns a value other than undefined; fails with the last observation. */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  describeState: () => Promise<string> = async () => "",
  timeoutMs = POLL_TIMEOUT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const state = await describeState().catch((e: unknown) => `(could not describe state: ${String(e)})`);
      throw new Error(
        `timed out after ${timeoutMs / 1000}s waiting for ${what}` +
          (lastError ? `; last error: ${String(lastError)}` : "") +
          (state ? `\n${state}` : ""),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

interface JobOptions {
  name: string;
  gpus?: number;
  podLabels?: Record<string, string>;
  backoffLimit?: number;
  podFailurePolicy?: V1PodFailurePolicy;
}

/** A plain batch/v1 Job the way the platform shapes them: container "trainer" on a GPU node. */
function gpuJob(o: JobOptions): V1Job {
  const gpus = String(o.gpus ?? 1);
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: o.name, namespace: NAMESPACE, labels: { [RUN_LABEL]: RUN_ID } },
    spec: {
      backoffLimit: o.backoffLimit ?? 0,
      ...(o.podFailurePolicy ? { podFailurePolicy: o.podFailurePolicy } : {}),
      template: {
        metadata: { labels: { [RUN_LABEL]: RUN_ID, ...o.podLabels } },
        spec: {
          restartPolicy: "Never",
          // Pod Security "restricted" compliant: the platform's namespace may enforce it.
          securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
          nodeSelector: { accelerator: "nvidia-gpu" },
          tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
          containers: [
            {
              name: "trainer",
              image: "registry.example.invalid/trainer:test",
              command: ["python", "train.py"],
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
              resources: {
                requests: { cpu: "1", memory: "1Gi", "nvidia.com/gpu": gpus },
                limits: { "nvidia.com/gpu": gpus },
              },
            },
          ],
        },
      },
    },
  };
}

async function createJob(job: V1Job): Promise<V1Job> {
  return batch.createNamespacedJob({ namespace: NAMESPACE, body: job });
}

async function readJob(name: string): Promise<V1Job> {
  return batch.readNamespacedJob({ name, namespace: NAMESPACE });
}

async function jobPods(name: string): Promise<V1Pod[]> {
  const list = await core.listNamespacedPod({
    namespace: NAMESPACE,
    labelSelector: `batch.kubernetes.io/job-name=${name}`,
  });
  return list.items;
}

function condition(job: V1Job, type: string): V1JobCondition | undefined {
  return job.status?.conditions?.find((c) => c.type === type && c.status === "True");
}

/** Job status and its pods' phases/containers, for timeout messages. */
async function describeJob(name: string): Promise<string> {
  const job = await readJob(name).catch((e: unknown) => `job: ${String(e)}`);
  const pods = await jobPods(name).catch(() => []);
  const podLines = pods.map(
    (p) =>
      `  pod ${p.metadata?.name} node=${p.spec?.nodeName ?? "-"} phase=${p.status?.phase} ` +
      `containers=${JSON.stringify(p.status?.containerStatuses?.map((c) => ({ name: c.name, state: c.state })))}`,
  );
  return [`job status: ${JSON.stringify(typeof job === "string" ? job : job.status)}`, ...podLines].join("\n");
}

async function waitForJobCondition(name: string, type: "Complete" | "Failed"): Promise<V1Job> {
  return waitFor(
    `Job ${name} condition ${type}`,
    async () => {
      const job = await readJob(name);
      return condition(job, type) ? job : undefined;
    },
    () => describeJob(name),
  );
}

beforeAll(async () => {
  try {
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  } catch (err) {
    if (httpCode(err) !== 409) throw err;
  }
  // Pods are rejected until the service account controller created "default".
  await waitFor("service account default in namespace training", async () => {
    try {
      return await core.readNamespacedServiceAccount({ name: "default", namespace: NAMESPACE });
    } catch (err) {
      if (httpCode(err) === 404) return undefined;
      throw err;
    }
  });
}, 120_000);

afterAll(async () => {
  // Matters when KUBECONFIG_TEST points at a long-lived cluster.
  await batch
    .deleteCollectionNamespacedJob({
      namespace: NAMESPACE,
      labelSelector: `${RUN_LABEL}=${RUN_ID}`,
      propagationPolicy: "Background",
    })
    .catch(() => undefined);
}, 60_000);

describe("integration-test cluster", { timeout: 120_000 }, () => {
  test("the API server reports Kubernetes v1.34", async () => {
    const version = await kc.makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toMatch(/^v1\.34\.\d+$/);
    expect(version.major).toBe("1");
    expect(version.minor).toBe("34");
  });

  test("the fake nodes are Ready with the advertised GPUs", async () => {
    const nodes = (await core.listNode()).items;
    const byName = new Map(nodes.map((n) => [n.metadata?.name, n]));
    for (const name of ["gpu-node-1", "gpu-node-2", "cpu-node-1"]) {
      const node = byName.get(name);
      expect(node, name).toBeDefined();
      expect(node?.status?.conditions?.find((c) => c.type === "Ready")?.status, name).toBe("True");
    }
    expect(byName.get("gpu-node-1")?.status?.allocatable?.["nvidia.com/gpu"]).toBe("8");
    expect(byName.get("gpu-node-1")?.metadata?.labels?.["gpu-type"]).toBe("t4");
    expect(byName.get("gpu-node-2")?.metadata?.labels?.["gpu-type"]).toBe("a100");
    expect(byName.get("cpu-node-1")?.status?.allocatable?.["nvidia.com/gpu"]).toBeUndefined();
  });

  test("a 1-GPU Job is scheduled onto a GPU node and completes", async () => {
    const name = jobName("gpu-ok");
    await createJob(gpuJob({ name, gpus: 1 }));
    const job = await waitForJobCondition(name, "Complete");
    expect(job.status?.succeeded).toBe(1);

    const pods = await jobPods(name);
    expect(pods).toHaveLength(1);
    const pod = pods[0] as V1Pod;
    expect(["gpu-node-1", "gpu-node-2"]).toContain(pod.spec?.nodeName);
    expect(pod.status?.phase).toBe("Succeeded");
    const trainer = pod.status?.containerStatuses?.find((c) => c.name === "trainer");
    expect(trainer?.state?.terminated?.exitCode).toBe(0);
  });

  test("a completed 1-GPU Job's trainer logs are served through pods/log, tailLines included", async () => {
    const name = jobName("gpu-logs");
    await createJob(gpuJob({ name }));
    await waitForJobCondition(name, "Complete");
    const podName = (await jobPods(name))[0]?.metadata?.name;
    expect(podName).toBeDefined();

    // The API server proxies to the node's kubelet endpoint: kwok's server,
    // which serves test/cluster/trainer.log for containers named trainer.
    const log = await core.readNamespacedPodLog({ name: podName as string, namespace: NAMESPACE, container: "trainer" });
    expect(log.split("\n")).toEqual([...TRAINER_LOG_LINES, ""]);

    const tail = await core.readNamespacedPodLog({
      name: podName as string,
      namespace: NAMESPACE,
      container: "trainer",
      tailLines: 2,
    });
    expect(tail).toBe(`${TRAINER_LOG_LINES.slice(-2).join("\n")}\n`);
  });

  test("a running 1-GPU Job's trainer logs are readable before it finishes", async () => {
    const name = jobName("gpu-logs-run");
    await createJob(gpuJob({ name, podLabels: { "kwok-run-duration": "10m" } }));
    const pod = await waitFor(
      `pod of Job ${name} Running`,
      async () => (await jobPods(name)).find((p) => p.status?.phase === "Running"),
      () => describeJob(name),
    );
    const log = await core.readNamespacedPodLog({
      name: pod.metadata?.name as string,
      namespace: NAMESPACE,
      container: "trainer",
      tailLines: 3,
    });
    expect(log).toBe(`${TRAINER_LOG_LINES.slice(-3).join("\n")}\n`);
    await batch.deleteNamespacedJob({ name, namespace: NAMESPACE, propagationPolicy: "Background" });
  });

  test("a 9-GPU Job stays Pending with FailedScheduling: Insufficient nvidia.com/gpu", async () => {
    const name = jobName("gpu-too-big");
    await createJob(gpuJob({ name, gpus: 9 }));

    const event = await waitFor(
      `FailedScheduling event for a pod of Job ${name}`,
      async () => {
        const events = await core.listNamespacedEvent({
          namespace: NAMESPACE,
          fieldSelector: "involvedObject.kind=Pod,reason=FailedScheduling",
        });
        return events.items.find((e) => e.involvedObject.name?.startsWith(`${name}-`));
      },
      () => describeJob(name),
    );
    expect(event.message).toContain("Insufficient nvidia.com/gpu");

    const pods = await jobPods(name);
    expect(pods).toHaveLength(1);
    expect(pods[0]?.status?.phase).toBe("Pending");
    expect(pods[0]?.spec?.nodeName).toBeUndefined();
    const scheduled = pods[0]?.status?.conditions?.find((c) => c.type === "PodScheduled");
    expect(scheduled?.status).toBe("False");
    expect(scheduled?.reason).toBe("Unschedulable");
  });

  test("a failing pod is retried until backoffLimit, then the Job fails with BackoffLimitExceeded", async () => {
    const name = jobName("gpu-fail");
    await createJob(gpuJob({ name, backoffLimit: 2, podLabels: { "kwok-fate": "fail" } }));
    const job = await waitFor(
      `Job ${name} Failed with 3 failed pods`,
      async () => {
        const j = await readJob(name);
        return condition(j, "Failed") && j.status?.failed === 3 ? j : undefined;
      },
      () => describeJob(name),
    );
    expect(condition(job, "Failed")?.reason).toBe("BackoffLimitExceeded");
    expect(job.status?.failed).toBe(3);
    expect(job.status?.succeeded ?? 0).toBe(0);
    const pods = await jobPods(name);
    expect(pods).toHaveLength(3);
    for (const pod of pods) {
      expect(pod.status?.phase).toBe("Failed");
      expect(pod.status?.containerStatuses?.find((c) => c.name === "trainer")?.state?.terminated?.exitCode).toBe(1);
    }
  });

  test("a podFailurePolicy FailJob rule on exit code 42 fails the Job at once", async () => {
    const name = jobName("gpu-pfp");
    await createJob(
      gpuJob({
        name,
        backoffLimit: 6,
        podLabels: { "kwok-fate": "fail", "kwok-exit-code": "42" },
        podFailurePolicy: {
          rules: [
            {
              action: "FailJob",
              onExitCodes: { containerName: "trainer", operator: "In", values: [42] },
            },
            { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
          ],
        },
      }),
    );
    const job = await waitForJobCondition(name, "Failed");
    const failed = condition(job, "Failed");
    expect(failed?.reason).toBe("PodFailurePolicy");
    expect(failed?.message).toContain("42");
    expect(job.status?.failed).toBe(1);
    const pods = await jobPods(name);
    expect(pods).toHaveLength(1);
  });

  test("kwok-fate=image-pull keeps the container waiting on its image", async () => {
    const name = jobName("gpu-pull");
    await createJob(gpuJob({ name, podLabels: { "kwok-fate": "image-pull" } }));
    const reason = await waitFor(
      `pod of Job ${name} waiting with ImagePullBackOff`,
      async () => {
        const pods = await jobPods(name);
        const waiting = pods[0]?.status?.containerStatuses?.find((c) => c.name === "trainer")?.state?.waiting;
        return waiting?.reason === "ImagePullBackOff" ? waiting.reason : undefined;
      },
      () => describeJob(name),
    );
    expect(reason).toBe("ImagePullBackOff");
    const pods = await jobPods(name);
    expect(pods[0]?.status?.phase).toBe("Pending");
    await batch.deleteNamespacedJob({ name, namespace: NAMESPACE, propagationPolicy: "Background" });
  });

  test("deleting a running Job with propagationPolicy Foreground takes its pods with it", async () => {
    const name = jobName("gpu-fg");
    await createJob(gpuJob({ name, podLabels: { "kwok-run-duration": "10m" } }));
    await waitFor(
      `pod of Job ${name} Running`,
      async () => ((await jobPods(name)).some((p) => p.status?.phase === "Running") ? true : undefined),
      () => describeJob(name),
    );

    await batch.deleteNamespacedJob({ name, namespace: NAMESPACE, propagationPolicy: "Foreground" });

    // Foreground: the Job stays (with a foregroundDeletion finalizer) until its pods are gone.
    await waitFor(
      `Job ${name} and its pods to be deleted`,
      async () => {
        const pods = await jobPods(name);
        let jobGone = false;
        try {
          await readJob(name);
        } catch (err) {
          if (httpCode(err) !== 404) throw err;
          jobGone = true;
        }
        return jobGone && pods.length === 0 ? true : undefined;
      },
      () => describeJob(name),
    );
  });

  test("server-side dry-run of an invalid Job returns 422 with the API server's message", async () => {
    const name = jobName("invalid");
    const invalid = gpuJob({ name });
    // Job pods must not restart in place: the API server rejects restartPolicy Always.
    (invalid.spec as NonNullable<V1Job["spec"]>).template.spec = {
      ...(invalid.spec?.template.spec as NonNullable<V1Pod["spec"]>),
      restartPolicy: "Always",
    };

    let caught: unknown;
    try {
      await batch.createNamespacedJob({ namespace: NAMESPACE, body: invalid, dryRun: "All" });
    } catch (err) {
      caught = err;
    }
    expect(httpCode(caught)).toBe(422);
    const message = statusMessage(caught);
    expect(message).toContain(`Job.batch "${name}" is invalid`);
    expect(message).toContain("spec.template.spec.restartPolicy");

    // A valid dry-run is accepted and persists nothing.
    const valid = gpuJob({ name });
    const echoed = await batch.createNamespacedJob({ namespace: NAMESPACE, body: valid, dryRun: "All" });
    expect(echoed.metadata?.name).toBe(name);
    let readCode: number | undefined;
    try {
      await readJob(name);
    } catch (err) {
      readCode = httpCode(err);
    }
    expect(readCode).toBe(404);
  });
});
