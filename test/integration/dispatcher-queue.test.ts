// What a backend sees of jobs waiting in the real Kueue, through the dispatcher: the platform chart
// with queueing on in a namespace of its own (projects 1 and 2 share gpu-node-1's 8 t4 GPUs, 4 each,
// borrowing the other's idle share), the dispatcher in process under its ServiceAccount's token with
// its live status (Workload watch, visibility-API polls), GET, the list and SSE over HTTP. Trainer
// pods run for an hour unless a test ends them, so only Kueue decides what runs.
import { BatchV1Api, CoreV1Api, KubeConfig, SchedulingV1Api, type V1Pod } from "@kubernetes/client-node";
import { App, Chart } from "cdk8s";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { trainingJobName } from "../../charts-ts/labels.ts";
import { PlatformChart } from "../../charts-ts/platform/platform-chart.ts";
import { TrainingPriorityClasses } from "../../charts-ts/platform/priority-classes.ts";
import type { TrainingRequestInput } from "../../charts-ts/request.ts";
import { platformSettings } from "../../charts-ts/settings.ts";
import { KubernetesExecutor } from "../../dispatcher/executors/kubernetes-executor.ts";
import { buildServer } from "../../dispatcher/http/server.ts";
import { type LiveStatus, startLiveStatus } from "../../dispatcher/live/live-status.ts";
import type { JobStatus, Queue, Transition } from "../../dispatcher/status/status-model.ts";
import { KueueNamespace, T4_POOL } from "./kueue-cluster.ts";
import { applyObjects, applyPlatform, chartObjects, distObjects } from "./platform.ts";
import { serviceAccountConfig } from "./service-account.ts";
import { type Subscription, subscribeSse } from "./sse.ts";
import { until } from "./until.ts";

const RUN = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`;
const NAMESPACE = `dq-${RUN}`;
const platform = platformSettings({ namespace: NAMESPACE, queueing: true });
const A = 1;
const B = 2;

const admin = new KubeConfig();
admin.loadFromFile(inject("kubeconfig"));
const batch = admin.makeApiClient(BatchV1Api);
const core = admin.makeApiClient(CoreV1Api);
const scheduling = admin.makeApiClient(SchedulingV1Api);
const kueue = new KueueNamespace(admin, NAMESPACE);

/** The platform chart with queueing on, less its cluster-wide PriorityClasses (dist/'s stay, as the other files expect). */
const platformObjects = () =>
  chartObjects(
    new PlatformChart(new App(), "platform", {
      platform: { namespace: NAMESPACE, queueing: true },
      queues: { gpuPools: [T4_POOL], projects: [String(A), String(B)] },
    }),
  ).filter((object) => object.kind !== "PriorityClass");

const token = "queue-status-token";
const auth = { authorization: `Bearer ${token}` };
let live: LiveStatus;
let app: ReturnType<typeof buildServer>;
let base: string;

beforeAll(async () => {
  await applyPlatform(admin);
  await kueue.setUp(platformObjects());
  const dispatcher = await serviceAccountConfig(admin, NAMESPACE, "training-dispatcher");
  live = await startLiveStatus({ kubeConfig: dispatcher, namespace: NAMESPACE, kueue: true, queuePollIntervalMs: 500 });
  app = buildServer({
    apiToken: token,
    bodyLimitBytes: 256 * 1024,
    defaultExecutor: "kubernetes",
    executors: { kubernetes: new KubernetesExecutor({ kubeConfig: dispatcher, platform }) },
    feed: live.feed,
  });
  base = await app.listen({ port: 0, host: "127.0.0.1" });
});

afterAll(async () => {
  await live?.stop();
  await app?.close();
  await kueue.tearDown(platformObjects());
});

let nextJobId = (Date.now() % 1_000_000) * 100 + 50;
function request(projectId: number, gpus: number, extra: Partial<TrainingRequestInput> = {}): TrainingRequestInput {
  return {
    jobId: ++nextJobId,
    projectId,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    resources: { gpu: gpus, ...(gpus > 0 && { gpuType: "t4" }), cpu: "2", memory: "4Gi", cpuRequest: "1", memoryRequest: "2Gi" },
    labels: { "kwok-run-duration": "1h" },
    ...extra,
  };
}

async function submit(projectId: number, gpus: number, extra: Partial<TrainingRequestInput> = {}): Promise<number> {
  const body = request(projectId, gpus, extra);
  const response = await fetch(`${base}/v1/jobs`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(response.status, await response.clone().text()).toBe(201);
  return body.jobId;
}

const getStatus = async (jobId: number): Promise<JobStatus> =>
  (await fetch(`${base}/v1/jobs/${jobId}`, { headers: auth })).json() as Promise<JobStatus>;

/** GET until the job is in `phase`/`reason` (and its queue matches, when given). */
const statusOf = (jobId: number, phase: string, reason?: string, queue?: Partial<Queue>) =>
  until(`job ${jobId} ${phase}/${reason ?? "*"} ${JSON.stringify(queue ?? {})}`, async () => {
    const status = await getStatus(jobId);
    const queueMatches = queue === undefined || Object.entries(queue).every(([key, value]) => status.queue?.[key as keyof Queue] === value);
    return status.phase === phase && (reason === undefined || status.reason === reason) && queueMatches ? status : undefined;
  });

type Pushed = Transition & { sequence: number; id: string };

/** Open SSE subscriptions: closed after each test, passed or not, so the server can close. */
const subscriptions = new Set<Subscription<unknown>>();

/** A live subscriber of one job's SSE stream, closed after the test whatever happens. */
function subscribe(jobId: number) {
  const subscription = subscribeSse<Transition & { sequence: number }>(`${base}/v1/jobs/${jobId}/events`, auth);
  subscriptions.add(subscription);
  return {
    events: subscription.events,
    /** Waits for an event matching `match`. */
    saw: (what: string, match: (event: Pushed) => boolean) => until(`SSE of job ${jobId}: ${what}`, () => subscription.events.find(match)),
    close: () => subscription.close(),
  };
}

const jobName = trainingJobName;

/** Kueue orders a queue by Workload creation time in whole seconds: waits for a later second than the job's Workload. */
async function nextSecondAfter(jobId: number): Promise<void> {
  const created = Date.parse(String((await until("the Workload", () => kueue.workloadOf(jobName(jobId))))?.metadata?.creationTimestamp));
  await until(`a later second than job ${jobId}'s Workload`, () => Date.now() >= created + 1000);
}

/** CPU millicores of a quantity (`2`, `500m`). */
const millicores = (quantity: string | undefined) =>
  quantity === undefined ? 0 : quantity.endsWith("m") ? Number.parseInt(quantity, 10) : Number.parseFloat(quantity) * 1000;
const keys = (transitions: readonly { phase: string; reason: string }[]) => transitions.map((t) => `${t.phase}/${t.reason}`);
const QUOTA_MESSAGE = /insufficient unused quota for nvidia\.com\/gpu in flavor gpu-t4, \d+ more needed/;

describe("job status with queueing on (real Kueue, through the dispatcher)", () => {
  afterEach(async () => {
    await Promise.all([...subscriptions].map((subscription) => subscription.close()));
    subscriptions.clear();
    await kueue.clearJobs();
  });

  it("shows B's jobs queued for t4 quota at positions 1 and 2 while A fills the flavor (GET, list, SSE), and B's first runs once A's finishes", async () => {
    const a = await submit(A, 8);
    await statusOf(a, "running");

    const b1 = await submit(B, 8);
    const first = await statusOf(b1, "queued", "WaitingForQuota", { position: 1 });
    expect(first.message).toMatch(QUOTA_MESSAGE);
    expect(first.queue).toEqual({ name: `project-${B}`, position: 1, flavor: "gpu-t4" });
    expect(first.transitions.at(-1)).toMatchObject({ phase: "queued", reason: "WaitingForQuota", queue: first.queue });
    // Admission and scheduling are two things: no pod exists, and the wait is not the scheduler's.
    expect(keys(first.transitions)).toEqual(["pending/Created", "queued/WaitingForQuota"]);
    expect(first.attempts).toBe(0);

    await nextSecondAfter(b1);
    const sse = subscribe(b1);
    const b2 = await submit(B, 8);
    const second = await statusOf(b2, "queued", "WaitingForQuota", { position: 2 });
    expect(second.queue).toEqual({ name: `project-${B}`, position: 2, flavor: "gpu-t4" });
    const listed = (await (await fetch(`${base}/v1/jobs?projectId=${B}`, { headers: auth })).json()) as { jobs: JobStatus[] };
    expect(Object.fromEntries(listed.jobs.map((job) => [job.jobId, job.queue?.position]))).toEqual({ [b1]: 1, [b2]: 2 });

    const sse2 = subscribe(b2);
    await sse2.saw("position 2", (event) => event.reason === "WaitingForQuota" && event.queue?.position === 2);

    await kueue.finish(jobName(a));
    await statusOf(a, "completed");
    const running = await statusOf(b1, "running");
    expect(running.queue).toBeUndefined();
    // b2 moved up: a new pushed event, and GET agrees.
    const moved = await sse2.saw("position 1", (event) => event.reason === "WaitingForQuota" && event.queue?.position === 1);
    await statusOf(b2, "queued", "WaitingForQuota", { position: 1 });
    expect(moved.id).toBe(String(moved.sequence));
    const b1Events = await sse.saw("running", (event) => event.phase === "running");
    expect(keys(sse.events)).toContain("queued/WaitingForQuota");
    expect(b1Events.queue).toBeUndefined();
    await Promise.all([sse.close(), sse2.close()]);
  });

  it("lets A borrow B's idle quota; B's submission preempts A, which is queued/Preempted naming B's job, re-queued without a retry, and runs again", async () => {
    const a = await submit(A, 8);
    await statusOf(a, "running");
    const sse = subscribe(a);

    const b = await submit(B, 4);
    const preempted = await statusOf(a, "queued", "Preempted", { position: 1 });
    expect(preempted.message).toBe(
      `preempted by ${jobName(b)} of ClusterQueue ${NAMESPACE}-project-${B} due to reclamation within the cohort; queued again`,
    );
    expect(preempted.queue).toEqual({ name: `project-${A}`, position: 1, flavor: "gpu-t4" });
    expect(preempted.transitions.some((t) => t.phase === "retrying")).toBe(false);
    await statusOf(b, "running");
    // Kueue suspended the Job; the Job controller counted no failure.
    const job = await batch.readNamespacedJob({ name: jobName(a), namespace: NAMESPACE });
    expect(job.spec?.suspend).toBe(true);
    expect(job.status?.failed ?? 0).toBe(0);

    await kueue.finish(jobName(b));
    const again = await until(`job ${a} running again`, async () => {
      const status = await getStatus(a);
      return status.phase === "running" && status.transitions.some((t) => t.reason === "Preempted") ? status : undefined;
    });
    expect(again.attempts).toBe(1);
    expect(keys(again.transitions)).toEqual(["pending/Created", "queued/Preempted", "starting/ContainerCreating", "running/Started"]);
    await sse.saw(
      "running again",
      (event) => event.phase === "running" && Date.parse(event.at) > Date.parse(preempted.transitions.at(-1)?.at ?? ""),
    );
    expect(keys(sse.events)).toContain("queued/Preempted");
    expect(sse.events.some((event) => event.phase === "retrying")).toBe(false);
    await sse.close();
  });

  it("preempts a low job for a high one of the same project only: another project's low job keeps running", async () => {
    const otherLow = await submit(B, 4, { priority: "low" });
    await statusOf(otherLow, "running");
    const low = await submit(A, 4, { priority: "low" });
    await statusOf(low, "running");

    const high = await submit(A, 4, { priority: "high" });
    const preempted = await statusOf(low, "queued", "Preempted");
    expect(preempted.message).toBe(
      `preempted by ${jobName(high)} of ClusterQueue ${NAMESPACE}-project-${A} due to prioritization in the ClusterQueue; queued again`,
    );
    await statusOf(high, "running");
    expect(await getStatus(otherLow)).toMatchObject({ phase: "running", attempts: 1 });
  });

  it("asks the visibility API nothing while no job waits", async () => {
    const positions = live.watch.queuePositions;
    if (!positions) throw new Error("the live status watches no Workloads");
    const [polls, requests] = [positions.polls, positions.requests];
    await until("two more polls", () => positions.polls >= polls + 2);
    expect(positions.requests).toBe(requests);
  });

  it("fails an inadmissible request fast: a GPU type no queue has is failed/Inadmissible with Kueue's words, its Workload deactivated", async () => {
    const jobId = await submit(A, 2, {
      resources: { gpu: 2, gpuType: "a100", cpu: "2", memory: "4Gi", cpuRequest: "1", memoryRequest: "2Gi" },
    });
    const failed = await statusOf(jobId, "failed", "Inadmissible");
    expect(failed.message).toBe(
      "no queue could ever admit this job: couldn't assign flavors to pod set main: flavor gpu-t4 doesn't match node affinity",
    );
    expect(failed.queue).toBeUndefined();
    expect(keys(failed.transitions)).toEqual(["pending/Created", "queued/Inadmissible", "failed/Inadmissible"]);
    await until("the Workload deactivated", async () => (await kueue.workloadOf(jobName(jobId)))?.spec?.active === false);
  });
});

describe("a CPU-only training job and the pods outside training", () => {
  const OTHER = `dq-other-${RUN}`;
  const blockerName = "backend-like";
  /** The training PriorityClasses with queueing on: preemptionPolicy Never (immutable, so replaced). */
  const priorityClasses = (queueing: boolean) => {
    const chart = new Chart(new App(), "priorities");
    new TrainingPriorityClasses(chart, "PriorityClasses", { queueing });
    return chartObjects(chart);
  };
  const replacePriorityClasses = async (objects: ReturnType<typeof priorityClasses>) => {
    for (const object of objects) await scheduling.deletePriorityClass({ name: object.metadata?.name ?? "" }).catch(() => undefined);
    await applyObjects(admin, objects);
  };

  beforeAll(async () => {
    await replacePriorityClasses(priorityClasses(true));
    await core.createNamespace({ body: { metadata: { name: OTHER } } });
  });
  afterAll(async () => {
    await core.deleteNamespace({ name: OTHER });
    // Back to dist/'s, which the other files expect.
    await replacePriorityClasses(distObjects("platform.k8s.yaml").filter((object) => object.kind === "PriorityClass"));
  });

  it("never preempts a pod without a PriorityClass in another namespace: the training pod waits for a node instead", async () => {
    // A pod of the backend's kind (priority 0) takes nearly all of cpu-node-1, the only node a CPU-only trainer may use.
    const allocatable = millicores((await core.readNode({ name: "cpu-node-1" })).status?.allocatable?.cpu);
    const used = (await core.listPodForAllNamespaces({ fieldSelector: "spec.nodeName=cpu-node-1" })).items
      .filter((pod) => pod.status?.phase === "Running" || pod.status?.phase === "Pending")
      .flatMap((pod) => pod.spec?.containers ?? [])
      .reduce((sum, container) => sum + millicores(container.resources?.requests?.cpu), 0);
    const blocker: V1Pod = {
      metadata: { name: blockerName, namespace: OTHER, labels: { app: "backend" } },
      spec: {
        nodeName: "cpu-node-1",
        restartPolicy: "Always",
        containers: [{ name: "backend", image: "backend:test", resources: { requests: { cpu: `${allocatable - used}m` } } }],
      },
    };
    await core.createNamespacedPod({ namespace: OTHER, body: blocker });
    await until(
      "the backend-like pod running",
      async () => (await core.readNamespacedPod({ name: blockerName, namespace: OTHER })).status?.phase === "Running",
    );

    const jobId = await submit(A, 0, { priority: "high" });
    const waiting = await statusOf(jobId, "queued", "Unschedulable");
    expect(waiting.message).toMatch(/Insufficient cpu/);
    expect(waiting.queue).toBeUndefined();
    // Kueue admitted it (CPU quota is plenty); the scheduler may not evict the backend for it.
    expect(await kueue.isAdmitted(jobName(jobId))).toBe(true);
    // The scheduler tried: a preemption would have nominated the node for the trainer and deleted the backend.
    const [trainer] = (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `job-name=${jobName(jobId)}` })).items;
    expect(trainer?.status?.conditions?.find((c) => c.type === "PodScheduled")?.reason).toBe("Unschedulable");
    expect(trainer?.status?.nominatedNodeName).toBeUndefined();
    const pod = await core.readNamespacedPod({ name: blockerName, namespace: OTHER });
    expect(pod.metadata?.deletionTimestamp).toBeUndefined();
    expect(pod.status?.phase).toBe("Running");
  });
});
