// What is pushed equals what GET says, against the real control plane: for every scenario the
// integration suite knows, a live SSE subscriber, the backend's callbacks (a recording backend) and
// GET polling end in the same final state; every (phase, reason) GET showed was pushed, in order;
// SSE ids and callback sequences are one number per event, never repeated.
import { BatchV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Job } from "@kubernetes/client-node";
import { App } from "cdk8s";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { JOB_NAME_LABEL, trainingJobName } from "../../charts-ts/labels.ts";
import { PlatformChart } from "../../charts-ts/platform/platform-chart.ts";
import { type TrainingRequestInput, trainingRequest } from "../../charts-ts/request.ts";
import { platformSettings } from "../../charts-ts/settings.ts";
import { KubernetesExecutor } from "../../dispatcher/executors/kubernetes-executor.ts";
import type { TransitionEvent } from "../../dispatcher/http/schemas.ts";
import { buildServer } from "../../dispatcher/http/server.ts";
import type { StatusCallback } from "../../dispatcher/live/backend-callbacks.ts";
import { type LiveStatus, startLiveStatus } from "../../dispatcher/live/live-status.ts";
import { DispatcherMetrics } from "../../dispatcher/live/metrics.ts";
import { type JobStatus, TERMINAL_PHASES, type Transition } from "../../dispatcher/status/status-model.ts";
import { KueueNamespace, T4_POOL } from "./kueue-cluster.ts";
import { applyPlatform, chartObjects } from "./platform.ts";
import { RecordingBackend } from "./recording-backend.ts";
import { type Resources, testRequest } from "./requests.ts";
import { subscribeSse } from "./sse.ts";
import { until } from "./until.ts";

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(inject("kubeconfig"));
const batch = kubeConfig.makeApiClient(BatchV1Api);
const core = kubeConfig.makeApiClient(CoreV1Api);
const platform = platformSettings({});
const NAMESPACE = platform.namespace;
const RUN = `p${Date.now().toString(36)}`;
let nextJobId = (Date.now() % 1_000_000) * 100 + 70;
const token = "parity-token";
const auth = { authorization: `Bearer ${token}` };
const backend = new RecordingBackend();
const executor = new KubernetesExecutor({ kubeConfig, platform });
let live: LiveStatus;
let app: ReturnType<typeof buildServer>;
let base: string;

/** A second dispatcher, with queueing on, in a namespace of its own: Kueue's queues for gpu-node-1's t4 GPUs, project 78. */
const QUEUED_NAMESPACE = `parity-kueue-${RUN}`;
const queuedPlatform = platformSettings({ namespace: QUEUED_NAMESPACE, queueing: true });
const kueue = new KueueNamespace(kubeConfig, QUEUED_NAMESPACE);
/** The platform chart with queueing on, less its cluster-wide PriorityClasses (dist/'s stay, as the other files expect). */
const queuedPlatformObjects = () =>
  chartObjects(
    new PlatformChart(new App(), "platform", {
      platform: { namespace: QUEUED_NAMESPACE, queueing: true },
      queues: { gpuPools: [T4_POOL], projects: ["78", "79"] },
    }),
  ).filter((object) => object.kind !== "PriorityClass");
let queuedLive: LiveStatus;
let queuedApp: ReturnType<typeof buildServer>;
let queuedBase: string;

beforeAll(async () => {
  await applyPlatform(kubeConfig);
  await backend.start();
  live = await startLiveStatus({
    kubeConfig,
    namespace: NAMESPACE,
    metrics: new DispatcherMetrics(),
    backend: { url: backend.url, minRetryDelayMs: 50, maxRetryDelayMs: 400 },
    startupDeadlineSeconds: 3,
    gpuNodeCapacity: new Map([
      ["t4", 8],
      ["a100", 8],
    ]),
  });
  app = buildServer({
    apiToken: token,
    bodyLimitBytes: 256 * 1024,
    defaultExecutor: "kubernetes",
    executors: { kubernetes: executor },
    feed: live.feed,
  });
  base = await app.listen({ port: 0, host: "127.0.0.1" });

  await kueue.setUp(queuedPlatformObjects());
  queuedLive = await startLiveStatus({
    kubeConfig,
    namespace: QUEUED_NAMESPACE,
    kueue: true,
    queuePollIntervalMs: 500,
    backend: { url: backend.url, minRetryDelayMs: 50, maxRetryDelayMs: 400 },
  });
  queuedApp = buildServer({
    apiToken: token,
    bodyLimitBytes: 256 * 1024,
    defaultExecutor: "kubernetes",
    executors: { kubernetes: new KubernetesExecutor({ kubeConfig, platform: queuedPlatform }) },
    feed: queuedLive.feed,
  });
  queuedBase = await queuedApp.listen({ port: 0, host: "127.0.0.1" });
});

afterAll(async () => {
  await live.stop();
  await app.close();
  await queuedLive?.stop();
  await queuedApp?.close();
  await kueue.tearDown(queuedPlatformObjects());
  await backend.close();
  const jobs = await batch.listNamespacedJob({ namespace: NAMESPACE, labelSelector: `test-run=${RUN}` });
  await Promise.all(
    jobs.items.map((job) =>
      batch.deleteNamespacedJob({ name: job.metadata?.name ?? "", namespace: NAMESPACE, propagationPolicy: "Background" }),
    ),
  );
});

const requestFor = (jobId: number, fate: Record<string, string> = {}, resources?: Resources): TrainingRequestInput =>
  testRequest(jobId, { id: RUN, projectId: 78 }, fate, resources);

async function post(path: string, body?: unknown, at = base): Promise<Response> {
  return fetch(`${at}${path}`, {
    method: "POST",
    headers: { ...auth, ...(body !== undefined && { "content-type": "application/json" }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

async function submit(fate: Record<string, string> = {}, resources?: Resources, at = base): Promise<number> {
  const jobId = ++nextJobId;
  const response = await post("/v1/jobs", requestFor(jobId, fate, resources), at);
  expect(response.status, await response.clone().text()).toBe(201);
  return jobId;
}

/** A Job the dispatcher did not vet: created straight through the API, as an older dispatcher or a person could. */
async function createDirectly(edit: (job: V1Job) => void, resources?: Resources): Promise<number> {
  const jobId = ++nextJobId;
  const job = structuredClone(executor.render(trainingRequest(requestFor(jobId, {}, resources)))) as V1Job;
  edit(job);
  await batch.createNamespacedJob({ namespace: NAMESPACE, body: job });
  return jobId;
}

async function getStatus(jobId: number, at = base): Promise<JobStatus> {
  return (await fetch(`${at}/v1/jobs/${jobId}`, { headers: auth })).json() as Promise<JobStatus>;
}

/** A pushed event as SSE and the callbacks carry it (the callbacks name the phase `status`). */
type Pushed = Omit<TransitionEvent, "jobId">;

/** A live subscriber of the job's SSE stream, from its first event. */
const subscribe = (jobId: number, at = base) => subscribeSse<Pushed>(`${at}/v1/jobs/${jobId}/events`, auth);

/** GET polled until `finished`: every (phase, reason) it showed, in order, and its last answer. */
async function poll(jobId: number, finished: (status: JobStatus) => boolean, timeoutMs = 90_000, at = base) {
  const seen: string[] = [];
  const last = await until(
    `job ${jobId} to finish`,
    async () => {
      const status = await getStatus(jobId, at);
      const key = `${status.phase}/${status.reason}`;
      if (seen.at(-1) !== key) seen.push(key);
      return finished(status) ? status : undefined;
    },
    timeoutMs,
  );
  return { seen, last };
}

const keyOf = (event: { phase: string; reason: string }) => `${event.phase}/${event.reason}`;
const comparable = ({ phase, reason, message, attempt, exitCode, queue, at }: Pushed | Transition) => ({
  phase,
  reason,
  message,
  attempt,
  exitCode,
  queue,
  at,
});
const statusOf = (call: StatusCallback): Pushed => ({ ...call, phase: call.status });

function isSubsequence(needles: readonly string[], haystack: readonly string[]): boolean {
  let index = 0;
  for (const item of haystack) if (item === needles[index]) index += 1;
  return index === needles.length;
}

const terminal = (status: JobStatus) => TERMINAL_PHASES.has(status.phase);

/** Follows one job to `finished` with all three observers and checks they agree; returns what was pushed. */
async function parity(jobId: number, finished: (status: JobStatus) => boolean = terminal, at = base): Promise<Pushed[]> {
  const sse = subscribe(jobId, at);
  const { seen, last } = await poll(jobId, finished, undefined, at);
  const final = last.transitions.at(-1) as Transition;
  await until(`SSE to reach ${keyOf(final)}`, () => sse.events.some((event) => keyOf(event) === keyOf(final)));
  await until(`the callbacks to reach ${keyOf(final)}`, () => backend.of(jobId).some((call) => keyOf(statusOf(call)) === keyOf(final)));
  // Pushing is quick; anything still on its way arrives well within this.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await sse.close();
  const pushed = sse.events;
  const called = backend.of(jobId).map(statusOf);
  const again = await getStatus(jobId, at);

  // One number per event, growing, the same on both channels.
  expect(pushed.map((event) => event.id)).toEqual(pushed.map((event) => String(event.sequence)));
  expect(new Set(pushed.map((event) => event.sequence)).size).toBe(pushed.length);
  expect(pushed.map((event) => event.sequence)).toEqual([...pushed.map((event) => event.sequence)].sort((a, b) => a - b));
  expect(called.map((call) => ({ sequence: call.sequence, ...comparable(call) }))).toEqual(
    pushed.map((event) => ({ sequence: event.sequence, ...comparable(event) })),
  );
  // The same final state everywhere, exactly as GET shows it.
  expect(comparable(pushed.at(-1) as Pushed)).toEqual(comparable(again.transitions.at(-1) as Transition));
  expect(again).toMatchObject({ phase: final.phase, reason: final.reason });
  expect(again.message).toBe(again.transitions.at(-1)?.message);
  // Everything GET showed on the way was pushed, in order.
  expect(isSubsequence(seen, pushed.map(keyOf)), `GET showed ${seen.join(" > ")}; pushed ${pushed.map(keyOf).join(" > ")}`).toBe(true);
  // And everything GET's history holds was pushed too.
  expect(isSubsequence(again.transitions.map(keyOf), pushed.map(keyOf))).toBe(true);
  return pushed;
}

const podsOf = async (jobId: number) =>
  (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `${JOB_NAME_LABEL}=${trainingJobName(jobId)}` })).items;

describe("pushed status equals GET", () => {
  it("a job that succeeds", async () => {
    const pushed = await parity(await submit());
    // A wait for quota (another file's pods still going) may come between; these come in this order.
    expect(
      isSubsequence(["pending/Created", "starting/ContainerCreating", "running/Started", "completed/Succeeded"], pushed.map(keyOf)),
    ).toBe(true);
    expect(pushed.at(-1)?.exitCode).toBe(0);
  });

  it("a job that fails once, then succeeds", async () => {
    const jobId = await submit({ "kwok-run-duration": "3s" });
    // Only the first attempt is told to fail: its pod's own labels, before kwok finishes it.
    const [first] = await until("the first pod", async () => {
      const pods = await podsOf(jobId);
      return pods.length > 0 ? pods : undefined;
    });
    await core.patchNamespacedPod(
      { name: first?.metadata?.name ?? "", namespace: NAMESPACE, body: { metadata: { labels: { "kwok-fate": "fail" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const pushed = await parity(jobId);
    const retry = pushed.find((event) => event.phase === "retrying");
    expect(retry).toMatchObject({ reason: "Error", attempt: 1, exitCode: 1 });
    expect(pushed.at(-1)).toMatchObject({ phase: "completed", exitCode: 0 });
  });

  it("a job that exhausts its retries: failed is pushed, with the last exit code", async () => {
    const pushed = await parity(await submit({ "kwok-fate": "fail", "kwok-exit-code": "7" }));
    expect(pushed.filter((event) => event.phase === "retrying").map((event) => event.exitCode)).toEqual([7, 7, 7]);
    expect(pushed.at(-1)).toMatchObject({ phase: "failed", reason: "BackoffLimitExceeded", exitCode: 7, attempt: 4 });
  });

  it("a configuration error (exit 2): failed at once, never a phantom retry", async () => {
    const pushed = await parity(await submit({ "kwok-fate": "fail", "kwok-exit-code": "2" }));
    expect(pushed.map((event) => event.phase)).not.toContain("retrying");
    expect(pushed.at(-1)).toMatchObject({ phase: "failed", reason: "ConfigurationError", exitCode: 2, attempt: 1 });
  });

  it("an image that cannot be pulled: the reason change is pushed at once, then the failure", async () => {
    const pushed = await parity(await submit({ "kwok-fate": "image-pull" }));
    expect(pushed.map(keyOf)).toContain("starting/ErrImagePull");
    expect(pushed.at(-1)).toMatchObject({ phase: "failed" });
  });

  it("a job stopped while running; its logs say the pods are gone", async () => {
    const jobId = await submit({ "kwok-run-duration": "300s" });
    await until("running", async () => (await getStatus(jobId)).phase === "running");
    expect((await post(`/v1/jobs/${jobId}/stop`)).status).toBe(200);
    const pushed = await parity(jobId, (status) => status.phase === "stopped" && status.message === "stopped on request");
    expect(pushed.at(-1)).toMatchObject({ phase: "stopped", reason: "StoppedByUser", exitCode: 143 });
    await until("its pods to go", async () => (await podsOf(jobId)).length === 0);
    const status = await getStatus(jobId);
    for (const query of ["", "?attempt=1"]) {
      const logs = await fetch(`${base}/v1/jobs/${jobId}/logs${query}`, { headers: auth });
      expect(logs.status).toBe(200);
      expect(logs.headers.get("x-log-state")).toBe("pods-gone");
      expect(logs.headers.get("x-log-attempt")).toBe(String(status.attempts));
      expect(logs.headers.get("x-log-exit-code")).toBe("143");
    }
    expect((await fetch(`${base}/v1/jobs/${jobId}/logs?attempt=2`, { headers: auth })).status).toBe(404);
  });

  it("a job no node could ever take: failed fast", async () => {
    const pushed = await parity(await submit({}, { gpu: 1, gpuType: "h100" }));
    expect(pushed.at(-1)).toMatchObject({ phase: "failed", reason: "NoNodeFits" });
  });

  it("a pod above the LimitRange: refused at submit; a Job made anyway fails fast with the API server's words", async () => {
    const refused = await post("/v1/jobs", requestFor(++nextJobId, {}, { gpu: 1, cpu: "100", cpuRequest: "1" }));
    expect(refused.status).toBe(400);
    const body = (await refused.json()) as { error: { message: string; field?: string } };
    expect(body.error.message).toMatch(/maximum cpu usage per Container is 64, but limit is 100/);
    expect(body.error.field).toBe("resources.cpu");
    expect((await getStatus(nextJobId)) as unknown).toMatchObject({ error: { code: "not_found" } });

    const jobId = await createDirectly(() => undefined, { gpu: 1, cpu: "100", cpuRequest: "1" });
    const pushed = await parity(jobId);
    expect(pushed.at(-1)).toMatchObject({ phase: "failed", reason: "PodRejected" });
    expect(pushed.at(-1)?.message).toMatch(/maximum cpu usage per Container is 64, but limit is 100/);
  });

  it("a pod Pod Security forbids: the dry run refuses it; a Job made anyway fails fast", async () => {
    const privileged = (job: V1Job) => {
      const container = job.spec?.template.spec?.containers[0];
      if (container) container.securityContext = { ...container.securityContext, allowPrivilegeEscalation: true };
    };
    const manifest = structuredClone(executor.render(trainingRequest(requestFor(++nextJobId)))) as V1Job;
    privileged(manifest);
    const verdict = await executor.verdictOn(manifest as never);
    expect(verdict).toMatchObject({ accepted: false, statusCode: 403 });
    expect(verdict.message).toMatch(/violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);

    const jobId = await createDirectly(privileged);
    const pushed = await parity(jobId);
    expect(pushed.at(-1)).toMatchObject({ phase: "failed", reason: "PodRejected" });
    expect(pushed.at(-1)?.message).toMatch(/violates PodSecurity/);
  });

  it("a job queued for a node, then run once one frees", async () => {
    const holder = await submit({ "kwok-run-duration": "300s" }, { gpu: 8, gpuType: "t4" });
    await until("the holder to run", async () => (await getStatus(holder)).phase === "running");
    const jobId = await submit({}, { gpu: 1, gpuType: "t4" });
    const sse = subscribe(jobId);
    await until("queued", async () => (await getStatus(jobId)).phase === "queued");
    expect((await post(`/v1/jobs/${holder}/stop`)).status).toBe(200);
    await sse.close();
    const pushed = await parity(jobId);
    expect(pushed.map(keyOf)).toContain("queued/Unschedulable");
    expect(pushed.at(-1)).toMatchObject({ phase: "completed" });
  });

  it("a job waiting on a full GPU quota says so, then runs once the quota frees", async () => {
    // The namespace's quota is 16 GPUs: two 8-GPU jobs fill it.
    const holders = [await submit({ "kwok-run-duration": "300s" }, { gpu: 8, gpuType: "t4" })];
    holders.push(await submit({ "kwok-run-duration": "300s" }, { gpu: 8, gpuType: "a100" }));
    for (const holder of holders) await until("the holders to run", async () => (await getStatus(holder)).phase === "running");
    // The quota being full is not a reason to refuse: it frees up.
    const jobId = await submit({}, { gpu: 1 });
    const queued = await until("the quota to be the reason", async () => {
      const status = await getStatus(jobId);
      return status.reason === "QuotaExceeded" ? status : undefined;
    });
    expect(queued.phase).toBe("queued");
    expect(queued.message).toMatch(
      /^exceeded quota: training-quota, requested: requests\.nvidia\.com\/gpu=1, used: requests\.nvidia\.com\/gpu=16, limited: requests\.nvidia\.com\/gpu=16$/,
    );
    const sse = subscribe(jobId);
    await until("the SSE backlog", () => sse.events.some((event) => event.reason === "QuotaExceeded"));
    await sse.close();
    for (const holder of holders) expect((await post(`/v1/jobs/${holder}/stop`)).status).toBe(200);
    const pushed = await parity(jobId);
    expect(pushed.map(keyOf)).toContain("queued/QuotaExceeded");
    expect(pushed.at(-1)).toMatchObject({ phase: "completed" });
  });

  it("with Kueue: a job queued for quota (its queue position pushed as it changes), then admitted and run once the quota frees", async () => {
    const holder = await submit({ "kwok-run-duration": "300s" }, { gpu: 8, gpuType: "t4" }, queuedBase);
    await until("the holder to run", async () => (await getStatus(holder, queuedBase)).phase === "running");
    const jobId = await submit({}, { gpu: 8, gpuType: "t4" }, queuedBase);
    const queued = await until("the job queued at position 1", async () => {
      const status = await getStatus(jobId, queuedBase);
      return status.reason === "WaitingForQuota" && status.queue?.position === 1 ? status : undefined;
    });
    expect(queued.queue).toEqual({ name: "project-78", position: 1, flavor: "gpu-t4" });
    const sse = subscribe(jobId, queuedBase);
    await until("the SSE backlog", () => sse.events.some((event) => event.queue?.position === 1));
    await sse.close();
    expect((await post(`/v1/jobs/${holder}/stop`, undefined, queuedBase)).status).toBe(200);
    const pushed = await parity(jobId, terminal, queuedBase);
    const waiting = pushed.filter((event) => keyOf(event) === "queued/WaitingForQuota");
    expect(waiting.at(-1)?.queue).toEqual({ name: "project-78", position: 1, flavor: "gpu-t4" });
    expect(waiting.at(-1)?.message).toMatch(/insufficient unused quota for nvidia\.com\/gpu in flavor gpu-t4/);
    expect(backend.of(jobId).find((call) => call.queue?.position === 1)).toMatchObject({ status: "queued", reason: "WaitingForQuota" });
    expect(pushed.at(-1)).toMatchObject({ phase: "completed" });
  });
});
