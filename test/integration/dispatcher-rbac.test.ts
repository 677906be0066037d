// The dispatcher with nothing but what the platform chart grants it: a token of its
// ServiceAccount (TokenRequest, as a pod would mount), not the tests' admin
// certificate. Every part that talks to the API server runs once under it: submit,
// status, logs, stop, the watches (the node watch through the ClusterRole), the
// callback Lease and the delivery record. And what it was not granted is refused.
import { ApiException, BatchV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api, type V1Job } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ANNOTATION, trainingJobName } from "../../charts-ts/labels.ts";
import { trainingRequest } from "../../charts-ts/request.ts";
import { platformSettings } from "../../charts-ts/settings.ts";
import { KubernetesExecutor } from "../../dispatcher/executors/kubernetes-executor.ts";
import { podOf } from "../../dispatcher/live/admission.ts";
import { parseDeliveryRecord } from "../../dispatcher/live/delivery-record.ts";
import { GpuNodes } from "../../dispatcher/live/gpu-nodes.ts";
import { type LiveStatus, startLiveStatus } from "../../dispatcher/live/live-status.ts";
import type { JobStatus } from "../../dispatcher/status/status-model.ts";
import { applyPlatform, distObjects } from "./platform.ts";
import { RecordingBackend } from "./recording-backend.ts";
import { serviceAccountConfig as asServiceAccount } from "./service-account.ts";
import { until } from "./until.ts";

const admin = new KubeConfig();
admin.loadFromFile(inject("kubeconfig"));
const platform = platformSettings({});
const NAMESPACE = platform.namespace;
const RUN = `b${Date.now().toString(36)}`;
let nextJobId = (Date.now() % 1_000_000) * 100 + 80;

const serviceAccount = distObjects("platform.k8s.yaml").find((object) => object.kind === "ServiceAccount")?.metadata?.name as string;
const backend = new RecordingBackend();
let dispatcher: KubeConfig;
let live: LiveStatus;
let executor: KubernetesExecutor;

/** The dispatcher's ServiceAccount by default, like its pod. */
const serviceAccountConfig = (name = serviceAccount) => asServiceAccount(admin, NAMESPACE, name);

beforeAll(async () => {
  await applyPlatform(admin);
  await backend.start();
  dispatcher = await serviceAccountConfig();
  executor = new KubernetesExecutor({ kubeConfig: dispatcher, platform });
  live = await startLiveStatus({
    kubeConfig: dispatcher,
    namespace: NAMESPACE,
    backend: { url: backend.url, identity: "rbac-replica", leaseSeconds: 3, renewSeconds: 1, minRetryDelayMs: 50, maxRetryDelayMs: 400 },
  });
});
afterAll(async () => {
  await live.stop();
  await backend.close();
  const batch = admin.makeApiClient(BatchV1Api);
  const jobs = await batch.listNamespacedJob({ namespace: NAMESPACE, labelSelector: `test-run=${RUN}` });
  await Promise.all(
    jobs.items.map((job) =>
      batch.deleteNamespacedJob({ name: job.metadata?.name ?? "", namespace: NAMESPACE, propagationPolicy: "Background" }),
    ),
  );
});

function request(fate: Record<string, string> = {}) {
  return trainingRequest({
    jobId: ++nextJobId,
    projectId: 78,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    resources: { gpu: 1 },
    labels: { "test-run": RUN, ...fate },
  });
}

const inPhase = (jobId: number, phase: JobStatus["phase"]) =>
  until(`job ${jobId} ${phase}`, async () => {
    const status = await executor.get(jobId);
    return status?.phase === phase ? status : undefined;
  });

async function forbidden(call: () => Promise<unknown>): Promise<number | undefined> {
  try {
    await call();
    return undefined;
  } catch (error) {
    return error instanceof ApiException ? error.code : undefined;
  }
}

describe("the dispatcher under its ServiceAccount, with the platform chart's RBAC only", () => {
  it("submits, watches, reads logs and reports a job to the end, delivering every transition under the Lease", async () => {
    const submitted = request();
    expect((await executor.submit(submitted)).created).toBe(true);
    const completed = await inPhase(submitted.jobId, "completed");
    const logs = await executor.logs(submitted.jobId, { follow: false });
    expect(logs.kind).toBe("output");
    await until("every transition delivered", () => backend.of(submitted.jobId).length === completed.transitions.length);
    expect(backend.of(submitted.jobId).map((call) => call.status)).toEqual(completed.transitions.map((transition) => transition.phase));
    expect(live.election?.isLeader).toBe(true);
    const job = await admin.makeApiClient(BatchV1Api).readNamespacedJob({ name: trainingJobName(submitted.jobId), namespace: NAMESPACE });
    expect(parseDeliveryRecord(job.metadata?.annotations?.[ANNOTATION.deliveredTransitions])?.count).toBe(completed.transitions.length);
  });

  it("stops a running job", async () => {
    const submitted = request({ "kwok-run-duration": "60s" });
    await executor.submit(submitted);
    await inPhase(submitted.jobId, "running");
    expect((await executor.stop(submitted.jobId))?.phase).toBe("stopped");
    await inPhase(submitted.jobId, "stopped");
  });

  it("may dry-run its Jobs' pods at submit, and never create a pod for real", async () => {
    const core = dispatcher.makeApiClient(CoreV1Api);
    const submitted = request();
    const verdict = await executor.dryRun(submitted);
    expect(verdict.verdict).toEqual({ accepted: true });
    // The same pod, as the dispatcher's ServiceAccount, for real: refused by the platform's admission policy.
    const pod = podOf(executor.render(submitted) as V1Job);
    let refusal: unknown;
    try {
      await core.createNamespacedPod({ namespace: NAMESPACE, body: pod });
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(ApiException);
    expect((refusal as ApiException<unknown>).code).toBe(403);
    expect(String((refusal as ApiException<unknown>).body)).toContain("the training dispatcher may only dry-run pods");
    const pods = await admin.makeApiClient(CoreV1Api).listNamespacedPod({
      namespace: NAMESPACE,
      labelSelector: `batch.kubernetes.io/job-name=${trainingJobName(submitted.jobId)}`,
    });
    expect(pods.items).toEqual([]);
  });

  it("reads the GPU nodes cluster-wide, through its ClusterRole", async () => {
    const largest = await until("the GPU nodes", () => (live.gpuNodes.largestNodes().size > 0 ? live.gpuNodes.largestNodes() : undefined));
    expect(largest.get("t4")).toBe(8);
    expect(largest.get("a100")).toBe(8);
  });

  it("is refused what the chart does not grant: Secrets, other namespaces, writing nodes", async () => {
    const core = dispatcher.makeApiClient(CoreV1Api);
    const batch = dispatcher.makeApiClient(BatchV1Api);
    expect(await forbidden(() => core.listNamespacedSecret({ namespace: NAMESPACE }))).toBe(403);
    expect(await forbidden(() => batch.listNamespacedJob({ namespace: "default" }))).toBe(403);
    expect(await forbidden(() => core.deleteNode({ name: "gpu-node-1", dryRun: "All" }))).toBe(403);
    expect(await forbidden(() => core.readNode({ name: "gpu-node-1" }))).toBe(403);
  });

  it("reports a missing ClusterRole as an error and judges jobs without the nodes", async () => {
    // The namespaced Role without the cluster-wide grant: what an install that skipped the ClusterRole runs with.
    const name = `no-nodes-${RUN}`;
    const core = admin.makeApiClient(CoreV1Api);
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({ namespace: NAMESPACE, body: { metadata: { name } } });
    await rbac.createNamespacedRoleBinding({
      namespace: NAMESPACE,
      body: {
        metadata: { name },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: serviceAccount },
        subjects: [{ kind: "ServiceAccount", name, namespace: NAMESPACE }],
      },
    });
    const logged: Record<string, unknown>[] = [];
    const nodes = new GpuNodes({
      kubeConfig: await serviceAccountConfig(name),
      log: (level, message, fields) => logged.push({ level, message, ...fields }),
    });
    try {
      await nodes.start();
      await until("the refusal to be logged", () => logged.length > 0);
      expect(logged[0]).toMatchObject({ level: "error", message: "watch broke; restarting it", watch: "nodes", status: 403 });
      expect(String(logged[0]?.error)).toContain('cannot list resource "nodes"');
      expect(nodes.largestNodes().size).toBe(0);
    } finally {
      await nodes.stop();
      await rbac.deleteNamespacedRoleBinding({ name, namespace: NAMESPACE });
      await core.deleteNamespacedServiceAccount({ name, namespace: NAMESPACE });
    }
  });
});
