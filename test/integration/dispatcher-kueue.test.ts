// The dispatcher submitting and stopping through the real Kueue: the platform chart synthesized
// with queueing on (queues for gpu-node-1's 8 t4 GPUs, projects 1 and 2, 4 GPUs each, borrowing
// the other's idle share) into a namespace of its own, the dispatcher in process under its
// ServiceAccount's token (the chart's RBAC only), with its live status. Trainer pods run for an
// hour unless a test ends them, so only Kueue and the dispatcher decide what runs.
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Job,
} from "@kubernetes/client-node";
import { App } from "cdk8s";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { QUEUE_NAME_LABEL, WORKLOAD_PRIORITY_CLASS_LABEL } from "../../charts-ts/kueue-contract.ts";
import { ANNOTATION, trainingJobName } from "../../charts-ts/labels.ts";
import { PlatformChart } from "../../charts-ts/platform/platform-chart.ts";
import { trainingRequest } from "../../charts-ts/request.ts";
import { platformSettings } from "../../charts-ts/settings.ts";
import { renderTrainingJob } from "../../charts-ts/training-job-chart.ts";
import { KubernetesExecutor } from "../../dispatcher/executors/kubernetes-executor.ts";
import { buildServer } from "../../dispatcher/http/server.ts";
import { type LiveStatus, startLiveStatus } from "../../dispatcher/live/live-status.ts";
import type { JobStatus, Phase } from "../../dispatcher/status/status-model.ts";
import { condition, KUEUE_GROUP, KUEUE_VERSION, KueueNamespace, T4_POOL } from "./kueue-cluster.ts";
import { applyPlatform, chartObjects } from "./platform.ts";
import { serviceAccountConfig } from "./service-account.ts";
import { until } from "./until.ts";

const RUN = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`;
const NAMESPACE = `dk-${RUN}`;
const platform = platformSettings({ namespace: NAMESPACE, queueing: true });
const SERVICE_ACCOUNT = "training-dispatcher";

const admin = new KubeConfig();
admin.loadFromFile(inject("kubeconfig"));
const batch = admin.makeApiClient(BatchV1Api);
const core = admin.makeApiClient(CoreV1Api);
const kueue = new KueueNamespace(admin, NAMESPACE);

/**
 * The platform chart with queueing on, less its PriorityClasses: those are cluster-wide, shared by
 * every namespace's platform, and dist/'s (applied first) are what the other test files expect.
 */
const platformObjects = () => {
  const chart = new PlatformChart(new App(), "platform", {
    platform: { namespace: NAMESPACE, queueing: true },
    queues: { gpuPools: [T4_POOL], projects: ["1", "2"] },
  });
  return chartObjects(chart).filter((object) => object.kind !== "PriorityClass");
};

const token = "kueue-integration-token";
const auth = { authorization: `Bearer ${token}` };
let dispatcher: KubeConfig;
let live: LiveStatus;
let app: ReturnType<typeof buildServer>;

beforeAll(async () => {
  await applyPlatform(admin);
  await kueue.setUp(platformObjects());
  dispatcher = await serviceAccountConfig(admin, NAMESPACE, SERVICE_ACCOUNT);
  // A trainer stuck on its image fails the job after 2 s, not 600.
  live = await startLiveStatus({ kubeConfig: dispatcher, namespace: NAMESPACE, startupDeadlineSeconds: 2 });
  app = buildServer({
    apiToken: token,
    bodyLimitBytes: 256 * 1024,
    defaultExecutor: "kubernetes",
    executors: { kubernetes: new KubernetesExecutor({ kubeConfig: dispatcher, platform }) },
  });
});
afterAll(async () => {
  await app?.close();
  await live?.stop();
  await kueue.tearDown(platformObjects());
});

let nextJobId = (Date.now() % 1_000_000) * 100;
/** A request of `gpus` t4 GPUs for a project; its pod runs for an hour unless the test ends it. */
function request(projectId: number | undefined, gpus: number) {
  return {
    jobId: ++nextJobId,
    ...(projectId !== undefined && { projectId }),
    framework: "timm" as const,
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    resources: { gpu: gpus, gpuType: "t4", cpu: "2", memory: "4Gi", cpuRequest: "1", memoryRequest: "2Gi" },
    labels: { "kwok-run-duration": "1h" },
  };
}

const post = (url: string, body?: object) => app.inject({ method: "POST", url, headers: auth, ...(body && { payload: body }) });
const getStatus = async (jobId: number): Promise<JobStatus> =>
  (await app.inject({ method: "GET", url: `/v1/jobs/${jobId}`, headers: auth })).json();
const inPhase = (jobId: number, phase: Phase) =>
  until(`job ${jobId} ${phase}`, async () => {
    const status = await getStatus(jobId);
    return status.phase === phase ? status : undefined;
  });
const readJob = (jobId: number) => batch.readNamespacedJob({ name: trainingJobName(jobId), namespace: NAMESPACE });
const podsOf = async (jobId: number) =>
  (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `job-name=${trainingJobName(jobId)}` })).items;

/** Submits through the dispatcher; the job id. */
async function submit(projectId: number, gpus: number): Promise<number> {
  const body = request(projectId, gpus);
  const created = await post("/v1/jobs", body);
  expect(created.statusCode, created.body).toBe(201);
  return body.jobId;
}

async function submitAdmitted(projectId: number, gpus: number): Promise<number> {
  const jobId = await submit(projectId, gpus);
  await kueue.waitAdmitted(trainingJobName(jobId));
  return jobId;
}

/** A later job of the same queue, admitted: proof that Kueue looked at the queue with the quota free. */
async function queueMovesOn(projectId: number, gpus: number): Promise<void> {
  await submitAdmitted(projectId, gpus);
}

describe("the dispatcher with queueing on (real Kueue)", () => {
  afterEach(() => kueue.clearJobs());

  it("submits into the project's LocalQueue: labelled, created suspended, admitted by Kueue, then running", async () => {
    const body = request(1, 4);
    // The dry run shows what submit creates, judged by the API server (Kueue's webhooks included).
    const dryRun = await post("/v1/jobs?dryRun=true", body);
    expect(dryRun.statusCode, dryRun.body).toBe(200);
    const manifest = dryRun.json().manifest as V1Job;
    expect(dryRun.json().verdict).toEqual({ accepted: true });
    expect(manifest.metadata?.labels).toMatchObject({
      [QUEUE_NAME_LABEL]: "project-1",
      [WORKLOAD_PRIORITY_CLASS_LABEL]: "training-default",
    });
    expect(manifest.spec?.suspend).toBe(true);

    expect((await post("/v1/jobs", body)).statusCode).toBe(201);
    const name = trainingJobName(body.jobId);
    await kueue.waitAdmitted(name);
    const workload = await kueue.workloadOf(name);
    expect(workload?.spec).toMatchObject({ queueName: "project-1", priorityClassRef: { name: "training-default" } });
    expect(workload?.status?.admission?.podSetAssignments[0]?.flavors).toMatchObject({ "nvidia.com/gpu": "gpu-t4" });
    expect((await readJob(body.jobId)).spec?.suspend).toBe(false);
    const running = await inPhase(body.jobId, "running");
    expect(running).toMatchObject({ attempts: 1, node: "gpu-node-1" });
  });

  it("refuses a project without a queue, or no project, naming projectId and the queues there are; nothing created", async () => {
    for (const [body, message] of [
      [request(3, 1), /^projectId: project 3 has no queue \(no LocalQueue project-3\); queues in namespace dk-\w+: project-1, project-2$/],
      [request(undefined, 1), /^projectId: required while queueing is on: .*; queues in namespace dk-\w+: project-1, project-2$/],
    ] as const) {
      for (const url of ["/v1/jobs", "/v1/jobs?dryRun=true"]) {
        const refused = await post(url, body);
        expect(refused.statusCode, url).toBe(400);
        expect(refused.json().error).toMatchObject({ code: "invalid_request", field: "projectId" });
        expect(refused.json().error.message).toMatch(message);
      }
      expect((await app.inject({ method: "GET", url: `/v1/jobs/${body.jobId}`, headers: auth })).statusCode).toBe(404);
    }
    expect((await batch.listNamespacedJob({ namespace: NAMESPACE })).items).toEqual([]);
  });

  it("stops a queued job: stopped, its Workload deactivated, never admitted when the quota frees; a second stop changes nothing", async () => {
    const holder = await submitAdmitted(1, 8);
    const queued = await submit(1, 8);
    await kueue.waitPending(trainingJobName(queued));
    // The chart lets the dispatcher read a queue's positions (visibility API) under its own token.
    expect(await new KueueNamespace(dispatcher, NAMESPACE).positions("1")).toEqual({ [trainingJobName(queued)]: 0 });

    const stopped = await post(`/v1/jobs/${queued}/stop`);
    expect(stopped.statusCode, stopped.body).toBe(200);
    expect(stopped.json()).toMatchObject({ phase: "stopped", reason: "StoppedByUser" });
    expect((await kueue.workloadOf(trainingJobName(queued)))?.spec?.active).toBe(false);
    // Recorded on the Job, so no replica looks for its Workload again.
    expect((await readJob(queued)).metadata?.annotations?.[ANNOTATION.workloadDeactivated]).toBeDefined();
    const again = await post(`/v1/jobs/${queued}/stop`);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(stopped.json());

    await kueue.finish(trainingJobName(holder));
    await queueMovesOn(1, 8);
    expect(await kueue.isAdmitted(trainingJobName(queued))).toBe(false);
    expect((await readJob(queued)).spec?.suspend).toBe(true);
    expect(await podsOf(queued)).toEqual([]);
    expect(await getStatus(queued)).toMatchObject({ phase: "stopped", reason: "StoppedByUser", attempts: 0 });
  });

  it("stops a running job: Kueue evicts it, its pod goes with SIGTERM's exit code, stopped, and it is not admitted again", async () => {
    const jobId = await submitAdmitted(2, 4);
    await inPhase(jobId, "running");
    const stopped = await post(`/v1/jobs/${jobId}/stop`);
    expect(stopped.statusCode, stopped.body).toBe(200);
    expect(stopped.json()).toMatchObject({ phase: "stopped", reason: "StoppedByUser" });

    const name = trainingJobName(jobId);
    const evicted = await until("the Workload evicted", async () => {
      const found = condition(await kueue.workloadOf(name), "Evicted");
      return found?.status === "True" ? found : undefined;
    });
    expect(evicted.reason).toBe("Deactivated");
    await until("the pod gone", async () => (await podsOf(jobId)).length === 0);
    // The dispatcher left suspend to Kueue, which suspended the Job on eviction.
    expect((await readJob(jobId)).spec?.suspend).toBe(true);
    const after = await until("the stop's exit code recorded", async () => {
      const status = await getStatus(jobId);
      return status.lastExitCode !== undefined ? status : undefined;
    });
    // kwok's answer to a deleted running pod: 143, SIGTERM's, the graceful path.
    expect(after).toMatchObject({ phase: "stopped", reason: "StoppedByUser", attempts: 1, lastExitCode: 143 });

    await queueMovesOn(2, 8);
    expect(await kueue.isAdmitted(name)).toBe(false);
    expect(await podsOf(jobId)).toEqual([]);
  });

  it("deactivates the Workload of a Job stopped before Kueue had made one (the live status finishes the stop)", async () => {
    const holder = await submitAdmitted(1, 8);
    // As a stop that landed first would leave it: the dispatcher's stop annotations on a queued Job.
    const body = trainingRequest(request(1, 8));
    const job = renderTrainingJob(body, platform) as V1Job;
    job.metadata = { ...job.metadata, annotations: { ...job.metadata?.annotations, [ANNOTATION.stoppedAt]: new Date().toISOString() } };
    await batch.createNamespacedJob({ namespace: NAMESPACE, body: job });
    const name = trainingJobName(body.jobId);
    await until("its Workload deactivated", async () => (await kueue.workloadOf(name))?.spec?.active === false);
    await until(
      "the deactivation recorded on the Job",
      async () => (await readJob(body.jobId)).metadata?.annotations?.[ANNOTATION.workloadDeactivated],
    );
    expect(await getStatus(body.jobId)).toMatchObject({ phase: "stopped", reason: "StoppedByUser" });

    await kueue.finish(trainingJobName(holder));
    await queueMovesOn(1, 8);
    expect(await kueue.isAdmitted(name)).toBe(false);
    expect(await podsOf(body.jobId)).toEqual([]);
  });

  it("fails fast a job stuck on its image: Kueue does not start it again, its Workload deactivated", async () => {
    const body = { ...request(2, 1), labels: { "kwok-fate": "image-pull" } };
    expect((await post("/v1/jobs", body)).statusCode).toBe(201);
    const failed = await inPhase(body.jobId, "failed");
    expect(failed.reason).toMatch(/^(ErrImagePull|ImagePullBackOff)$/);
    const name = trainingJobName(body.jobId);
    // Fail-fast suspends the Job; Kueue, its Workload still admitted, would unsuspend it.
    await until("its Workload deactivated", async () => (await kueue.workloadOf(name))?.spec?.active === false);
    await until("the pod gone", async () => (await podsOf(body.jobId)).length === 0);
    expect((await readJob(body.jobId)).spec?.suspend).toBe(true);
    expect(await kueue.isAdmitted(name)).toBe(false);
    expect(await getStatus(body.jobId)).toMatchObject({ phase: "failed", reason: failed.reason });
  });

  it("re-queues a job Kueue preempts without spending a retry: its Job counts no failure, and it runs again", async () => {
    // Project 2 borrows project 1's idle half; project 1 reclaims it.
    const borrower = await submitAdmitted(2, 8);
    await inPhase(borrower, "running");
    const firstPod = (await podsOf(borrower))[0]?.metadata?.name;
    const owner = await submitAdmitted(1, 4);
    const name = trainingJobName(borrower);
    expect(condition(await kueue.workloadOf(name), "Preempted")?.reason).toBe("InCohortReclamation");
    await until("the borrower's pod gone", async () => (await podsOf(borrower)).length === 0);
    const requeued = await kueue.waitPending(name);
    expect(requeued.message).toMatch(/insufficient unused quota for nvidia\.com\/gpu in flavor gpu-t4/);
    const job = await readJob(borrower);
    expect(job.spec?.suspend).toBe(true);
    // Kueue suspends the Job: the Job controller removes the pod without counting it against backoffLimit.
    expect(job.status?.failed ?? 0).toBe(0);
    const waiting = await getStatus(borrower);
    expect(waiting.phase).not.toBe("failed");

    await kueue.finish(trainingJobName(owner));
    await kueue.waitAdmitted(name);
    const again = await until("the borrower running again, in a new pod", async () => {
      const status = await getStatus(borrower);
      const pods = await podsOf(borrower);
      return status.phase === "running" && pods.length === 1 && pods[0]?.metadata?.name !== firstPod ? status : undefined;
    });
    expect((await readJob(borrower)).status?.failed ?? 0).toBe(0);
    // What the derivation makes of it today (H2's part, issue 13 item 4): the preempted run's pod is gone
    // and nothing recorded it, so the history starts over at attempt 1 with no Preempted transition.
    expect(again.transitions.map((t) => t.phase)).not.toContain("failed");
    expect(again.transitions.map((t) => t.phase)).not.toContain("retrying");
  });

  it("holds the ServiceAccount to the queue: no Job without the queue label or unsuspended, no unsuspending, no Workload change but deactivation", async () => {
    const asDispatcher = dispatcher.makeApiClient(BatchV1Api);
    const refusal = async (call: () => Promise<unknown>): Promise<string> => {
      try {
        await call();
      } catch (error) {
        if (error instanceof ApiException && error.code === 403) return String(error.body);
        throw error;
      }
      throw new Error("not refused");
    };
    const message = "queued by Kueue: created suspended with the label kueue.x-k8s.io/queue-name";

    // The same request rendered with queueing off: no queue, runs at once.
    const unqueued = renderTrainingJob(trainingRequest(request(1, 1)), { ...platform, queueing: false }) as V1Job;
    expect(await refusal(() => asDispatcher.createNamespacedJob({ namespace: NAMESPACE, body: unqueued }))).toContain(message);

    const holder = await submitAdmitted(1, 8);
    const queued = await submit(1, 8);
    await kueue.waitPending(trainingJobName(queued));
    const patch = (body: object) => () =>
      asDispatcher.patchNamespacedJob(
        { name: trainingJobName(queued), namespace: NAMESPACE, body },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    expect(await refusal(patch({ spec: { suspend: false } }))).toContain(message);
    expect(await refusal(patch({ metadata: { labels: { [QUEUE_NAME_LABEL]: "project-2" } } }))).toContain(message);
    expect(await refusal(patch({ metadata: { labels: { [QUEUE_NAME_LABEL]: null } } }))).toContain(message);
    expect(await podsOf(queued)).toEqual([]);
    expect(await kueue.isAdmitted(trainingJobName(holder))).toBe(true);

    // Its Workload: deactivating is all the ServiceAccount may do.
    const workload = (await kueue.workloadOf(trainingJobName(queued)))?.metadata?.name ?? "";
    const asDispatcherCustom = dispatcher.makeApiClient(CustomObjectsApi);
    const patchWorkload = (spec: object) => () =>
      asDispatcherCustom.patchNamespacedCustomObject(
        { group: KUEUE_GROUP, version: KUEUE_VERSION, namespace: NAMESPACE, plural: "workloads", name: workload, body: { spec } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    const onlyDeactivate = "the training dispatcher may only deactivate a Workload";
    expect(await refusal(patchWorkload({ queueName: "project-2" }))).toContain(onlyDeactivate);
    expect(await refusal(patchWorkload({ priority: 100_000 }))).toContain(onlyDeactivate);
    await patchWorkload({ active: false })();
    expect(await refusal(patchWorkload({ active: true }))).toContain(onlyDeactivate);
  });
});
