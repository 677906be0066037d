// Watch-based live status against the real control plane, with a real local HTTP
// server playing the backend and recording what it receives: delivery in order and
// at least once (exactly once when nothing crashes mid-call), through backend
// outages and dispatcher restarts; server-sent events resumable with Last-Event-ID.
import { spawn } from "node:child_process";
import { existsSync, openSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { BatchV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Job, VersionApi } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ANNOTATION, trainingJobName } from "../../charts-ts/labels.ts";
import { type TrainingRequestInput, trainingRequest } from "../../charts-ts/request.ts";
import { platformSettings } from "../../charts-ts/settings.ts";
import { KubernetesExecutor } from "../../dispatcher/executors/kubernetes-executor.ts";
import { buildServer } from "../../dispatcher/http/server.ts";
import { logCallbackOf, type StatusCallback } from "../../dispatcher/live/backend-callbacks.ts";
import { parseDeliveryRecord } from "../../dispatcher/live/delivery-record.ts";
import { type LiveStatus, startLiveStatus } from "../../dispatcher/live/live-status.ts";
import { DispatcherMetrics } from "../../dispatcher/live/metrics.ts";
import type { JobStatus } from "../../dispatcher/status/status-model.ts";
import { applyPlatform } from "./platform.ts";
import { RecordingBackend } from "./recording-backend.ts";
import { type Resources, testRequest } from "./requests.ts";
import { until } from "./until.ts";

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(inject("kubeconfig"));
const batch = kubeConfig.makeApiClient(BatchV1Api);
const core = kubeConfig.makeApiClient(CoreV1Api);
const platform = platformSettings({});
const RUN = `l${Date.now().toString(36)}`;
let nextJobId = (Date.now() % 1_000_000) * 100 + 50;
const token = "live-token";
const backendToken = "backend-shared-token";
const auth = { authorization: `Bearer ${token}` };

/** What the dispatcher logged, for the tests that expect an operator to hear of something. */
const logged: Record<string, unknown>[] = [];
const DECLARED_POOLS = new Map([
  ["t4", 8],
  ["a100", 8],
]);
const backend = new RecordingBackend();
const metrics = new DispatcherMetrics();
let live: LiveStatus;
let app: ReturnType<typeof buildServer>;
let base: string;

async function startDispatcher(): Promise<void> {
  live = await startLiveStatus({
    kubeConfig,
    namespace: platform.namespace,
    metrics,
    backend: {
      url: backend.url,
      token: backendToken,
      minRetryDelayMs: 50,
      maxRetryDelayMs: 400,
      identity: "replica-a",
      leaseSeconds: 3,
      renewSeconds: 1,
    },
    startupDeadlineSeconds: 3,
    log: (level, message, fields) => logged.push({ level, message, ...fields }),
    // The pools test/cluster/nodes.yaml stands for.
    gpuNodeCapacity: DECLARED_POOLS,
  });
  app = buildServer({
    apiToken: token,
    bodyLimitBytes: 256 * 1024,
    defaultExecutor: "kubernetes",
    executors: { kubernetes: new KubernetesExecutor({ kubeConfig, platform }) },
    feed: live.feed,
    metrics,
  });
  base = await app.listen({ port: 0, host: "127.0.0.1" });
}

async function stopDispatcher(): Promise<void> {
  await live.stop();
  await app.close();
}

beforeAll(async () => {
  await applyPlatform(kubeConfig);
  await backend.start();
  await startDispatcher();
});
afterAll(async () => {
  await stopDispatcher();
  await backend.close();
  const jobs = await batch.listNamespacedJob({ namespace: platform.namespace, labelSelector: `test-run=${RUN}` });
  await Promise.all(
    jobs.items.map((job) =>
      batch.deleteNamespacedJob({ name: job.metadata?.name ?? "", namespace: platform.namespace, propagationPolicy: "Background" }),
    ),
  );
});

const requestFor = (jobId: number, fate: Record<string, string> = {}, resources?: Resources): TrainingRequestInput =>
  testRequest(jobId, { id: RUN, projectId: 77 }, fate, resources);

async function submit(fate: Record<string, string> = {}, resources?: Resources): Promise<number> {
  const jobId = ++nextJobId;
  const response = await fetch(`${base}/v1/jobs`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(requestFor(jobId, fate, resources)),
  });
  expect(response.status).toBe(201);
  return jobId;
}

async function status(jobId: number): Promise<JobStatus> {
  return (await fetch(`${base}/v1/jobs/${jobId}`, { headers: auth })).json() as Promise<JobStatus>;
}

async function deliveredAnnotation(jobId: number): Promise<number> {
  const job = await batch.readNamespacedJob({ name: trainingJobName(jobId), namespace: platform.namespace });
  return parseDeliveryRecord(job.metadata?.annotations?.[ANNOTATION.deliveredTransitions])?.count ?? 0;
}

const keyOf = (transition: { phase: string; reason: string; attempt?: number; at: string }) =>
  `${transition.phase}/${transition.reason}/${transition.attempt ?? ""}@${transition.at}`;

/**
 * Every event of the job's status stream reached the backend once, in order, numbered 1, 2, 3, ...;
 * every transition of the final status among them in the same order (a superseded one, ErrImagePull
 * before ImagePullBackOff, was pushed too), the last exactly as GET shows it; and the Job records it.
 */
async function expectDeliveredExactlyOnce(jobId: number): Promise<void> {
  const final = await until(`job ${jobId} to finish`, async () => {
    const current = await status(jobId);
    return ["completed", "failed", "stopped"].includes(current.phase) ? current : undefined;
  });
  const last = final.transitions.at(-1) as JobStatus["transitions"][number];
  await until(`the final transition of job ${jobId} delivered`, () => {
    const latest = backend.of(jobId).at(-1);
    return latest !== undefined && keyOf({ ...latest, phase: latest.status }) === keyOf(last);
  });
  const received = backend.of(jobId);
  expect(received.map((call) => call.sequence)).toEqual(received.map((_, index) => index + 1));
  const keys = received.map((call) => keyOf({ ...call, phase: call.status }));
  let found = 0;
  for (const key of keys) if (key === keyOf(final.transitions[found] ?? last)) found += 1;
  expect(found, `delivered ${keys.join(" > ")}; GET holds ${final.transitions.map(keyOf).join(" > ")}`).toBe(final.transitions.length);
  const { status: phase, sequence: _sequence, ...rest } = received.at(-1) as StatusCallback;
  expect({ phase, ...rest }).toEqual(last);
  // Each event's line for the job's log view, in the same order, once.
  await until(`all log lines of job ${jobId} delivered`, () => backend.logsOf(jobId).length >= received.length);
  expect(backend.logsOf(jobId)).toEqual(
    received.map(({ status: callPhase, sequence: _s, ...call }) => logCallbackOf({ phase: callPhase, ...call })),
  );
  await until(`the delivered annotation of job ${jobId}`, async () => (await deliveredAnnotation(jobId)) === received.length);
}

describe("status callbacks to the backend", () => {
  it("delivers every transition in order, once, with the shared token", async () => {
    const jobId = await submit();
    await expectDeliveredExactlyOnce(jobId);
    expect(backend.of(jobId).map((call) => call.status)).toEqual(expect.arrayContaining(["pending", "running", "completed"]));
    expect([...backend.tokens]).toEqual([backendToken]);
  });

  it("keeps retrying while the backend answers 500, then delivers everything in order", async () => {
    backend.failing = true;
    const refusedBefore = backend.refused;
    const jobId = await submit();
    await until("the job to complete while the backend is down", async () => (await status(jobId)).phase === "completed");
    await until("several refused calls", () => backend.refused >= refusedBefore + 3);
    expect(backend.of(jobId)).toEqual([]);
    backend.failing = false;
    await expectDeliveredExactlyOnce(jobId);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/training_dispatcher_callback_failures_total [1-9]/);
  });

  it("loses and duplicates nothing when kube-apiserver is killed and restarted mid-stream", async () => {
    const restartsBefore = live.watch.restarts;
    const jobId = await submit({ "kwok-run-duration": "3s" });
    await until("running delivered", () => backend.of(jobId).at(-1)?.status === "running");
    const restart = killApiServer();
    // Down for a while: every watch breaks, the delivery record cannot be written.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    await restart();
    await expectDeliveredExactlyOnce(jobId);
    expect(live.watch.restarts).toBeGreaterThan(restartsBefore);
    expect(logged).toContainEqual(expect.objectContaining({ level: "warn", message: "watch broke; restarting it", watch: "jobs" }));
    // And the watch still sees new work afterwards.
    await expectDeliveredExactlyOnce(await submit());
  });

  it("resumes after a dispatcher restart between transitions: nothing lost, nothing sent twice", async () => {
    const jobId = await submit({ "kwok-run-duration": "6s" });
    await until("running delivered and recorded", async () => {
      const received = backend.of(jobId);
      return received.at(-1)?.status === "running" && (await deliveredAnnotation(jobId)) === received.length;
    });
    await stopDispatcher();
    // The job finishes while no dispatcher runs.
    await until(
      "the Job to complete",
      async () => (await batch.readNamespacedJob({ name: trainingJobName(jobId), namespace: platform.namespace })).status?.succeeded === 1,
    );
    const beforeRestart = backend.of(jobId).length;
    await startDispatcher();
    await expectDeliveredExactlyOnce(jobId);
    expect(backend.of(jobId).length).toBeGreaterThan(beforeRestart);
  });
});

describe("a Job deleted and created again under its name", () => {
  it("is delivered from its own first transition, and the deleted one's queue is dropped", async () => {
    const jobId = await submit();
    await expectDeliveredExactlyOnce(jobId);
    const first = backend.of(jobId).length;
    const name = trainingJobName(jobId);
    const tracked = live.callbacks?.tracked() ?? 0;
    await batch.deleteNamespacedJob({ name, namespace: platform.namespace, propagationPolicy: "Foreground" });
    await until("the Job to be gone", async () => {
      const jobs = await batch.listNamespacedJob({ namespace: platform.namespace, fieldSelector: `metadata.name=${name}` });
      return jobs.items.length === 0;
    });
    await until("its queue to be dropped", () => (live.callbacks?.tracked() ?? 0) < tracked);

    const response = await fetch(`${base}/v1/jobs`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify(requestFor(jobId)),
    });
    expect(response.status).toBe(201);
    const final = await until("the new Job to complete", async () => {
      const current = await status(jobId);
      return current.phase === "completed" ? current : undefined;
    });
    await until("its transitions delivered", () => backend.of(jobId).length >= first + final.transitions.length);
    const again = backend.of(jobId).slice(first);
    expect(again.map((call) => call.sequence)).toEqual(final.transitions.map((_, index) => index + 1));
    expect(again.map((call) => call.at)).toEqual(final.transitions.map((transition) => transition.at));
    await until("its delivery record", async () => (await deliveredAnnotation(jobId)) === final.transitions.length);
  });
});

describe("a history rewritten under the delivery record", () => {
  it("delivers the resumed attempt of a Job suspended and resumed by hand, numbering on from the last sequence", async () => {
    const jobId = await submit({ "kwok-run-duration": "60s" });
    const name = trainingJobName(jobId);
    await until(
      "running delivered and recorded",
      async () => backend.of(jobId).at(-1)?.status === "running" && (await deliveredAnnotation(jobId)) >= 3,
    );
    const before = backend.of(jobId);
    // Not through the dispatcher: its pods go without their history being written on the Job.
    const suspend = (suspended: boolean) =>
      batch.patchNamespacedJob(
        { name, namespace: platform.namespace, body: { spec: { suspend: suspended } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    await suspend(true);
    await until("its pods to go", async () => {
      const pods = await core.listNamespacedPod({ namespace: platform.namespace, labelSelector: `batch.kubernetes.io/job-name=${name}` });
      return pods.items.length === 0;
    });
    await suspend(false);
    await until("the resumed attempt to run", async () => (await status(jobId)).phase === "running");
    const resumedRunning = (await status(jobId)).transitions.at(-1);
    await until("the resumed attempt delivered", () =>
      backend.of(jobId).some((call) => call.status === "running" && call.at === resumedRunning?.at),
    );
    const after = backend.of(jobId).slice(before.length);
    expect(after.map((call) => call.status)).toContain("starting");
    expect(after.map((call) => call.sequence)).toEqual(after.map((_, index) => before.length + index + 1));
    await batch.deleteNamespacedJob({ name, namespace: platform.namespace, propagationPolicy: "Background" });
  });
});

describe("two replicas", () => {
  it("deliver each transition once: only the lease holder calls the backend, and the other takes over when it stops", async () => {
    const second = await startLiveStatus({
      kubeConfig,
      namespace: platform.namespace,
      backend: { url: backend.url, token: backendToken, identity: "replica-b", leaseSeconds: 3, renewSeconds: 1 },
    });
    try {
      await until("replica-a to lead", () => live.election?.isLeader);
      expect(second.election?.isLeader).toBe(false);
      await expectDeliveredExactlyOnce(await submit());

      await stopDispatcher();
      await until("replica-b to take over", () => second.election?.isLeader, 15_000);
      const jobId = ++nextJobId;
      await batch.createNamespacedJob({
        namespace: platform.namespace,
        body: new KubernetesExecutor({ kubeConfig, platform }).render(trainingRequest(requestFor(jobId))) as V1Job,
      });
      await startDispatcher();
      await expectDeliveredExactlyOnce(jobId);
    } finally {
      await second.stop();
    }
    await until("replica-a to lead again", () => live.election?.isLeader, 15_000);
  });
});

describe("failing fast", () => {
  it("fails a job whose image cannot be pulled once the startup deadline passes, and removes its pods", async () => {
    const jobId = await submit({ "kwok-fate": "image-pull" });
    await until("the image pull trouble", async () => ["ErrImagePull", "ImagePullBackOff"].includes((await status(jobId)).reason));
    const failed = await until("the job to fail", async () => {
      const current = await status(jobId);
      return current.phase === "failed" ? current : undefined;
    });
    expect(["ErrImagePull", "ImagePullBackOff"]).toContain(failed.reason);
    expect(failed.message).toMatch(/^the trainer could not start within 3s: /);
    expect(failed.completionTime).toBeDefined();
    const name = trainingJobName(jobId);
    const job = await batch.readNamespacedJob({ name, namespace: platform.namespace });
    expect(job.spec?.suspend).toBe(true);
    await until("its pods to go", async () => {
      const pods = await core.listNamespacedPod({ namespace: platform.namespace, labelSelector: `batch.kubernetes.io/job-name=${name}` });
      return pods.items.length === 0;
    });
    await expectDeliveredExactlyOnce(jobId);
    expect(backend.of(jobId).at(-1)).toMatchObject({ status: "failed", reason: failed.reason });
  });

  it("fails at once a job asking for more GPUs than the largest node of its type has, and removes its pods", async () => {
    const node = await addGpuNode("l4", 1);
    try {
      // Ready, and the node controller's not-ready taint gone: only the GPU taint, which trainers tolerate.
      await until("the l4 node to be ready", async () => {
        const { spec, status: nodeStatus } = await core.readNode({ name: node });
        const ready = nodeStatus?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
        return ready && spec?.taints?.every((taint) => taint.key === "nvidia.com/gpu");
      });
      await until("the dispatcher to see the l4 node", () => live.gpuNodes.largestNodes().get("l4") === 1);
      const jobId = await submit({}, { gpu: 2, gpuType: "l4" });
      const failed = await failedFast(jobId);
      expect(failed.message).toBe("no node could ever run this job: asks for 2 GPUs on one node; the largest l4 node has 1");
      expect(logged).toContainEqual({
        level: "info",
        message: "job failed fast",
        job: trainingJobName(jobId),
        reason: "NoNodeFits",
        detail: failed.message,
      });
      // The scheduler's word came first and stays in the history.
      expect(failed.transitions.map((transition) => transition.phase)).toEqual(["pending", "queued", "failed"]);
      expect(failed.transitions[1]?.message).toMatch(/Insufficient nvidia\.com\/gpu/);
      await expectDeliveredExactlyOnce(jobId);
    } finally {
      await core.deleteNode({ name: node });
    }
  });

  it("fails at once a job for a GPU type no declared pool has, though no node of any pool is up to say so", async () => {
    const jobId = await submit({}, { gpu: 1, gpuType: "h100" });
    const failed = await failedFast(jobId);
    expect(failed.message).toBe("no node could ever run this job: no GPU pool has type h100 (pools: t4, a100)");
    await expectDeliveredExactlyOnce(jobId);
  });

  it("keeps a job that fits its GPU pool queued, until cluster-autoscaler says no new node would take it", async () => {
    // One GPU fits every t4 node; 48 CPUs fit none (they have 32), which the scheduler also says of a busy node.
    const jobId = await submit({}, { gpu: 1, gpuType: "t4", cpu: "48", cpuRequest: "48" });
    const queued = await until("the job to queue", async () => {
      const current = await status(jobId);
      return current.phase === "queued" ? current : undefined;
    });
    expect(queued.message).toMatch(/Insufficient cpu/);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect((await status(jobId)).phase).toBe("queued");

    // What cluster-autoscaler records on a pod that a new node of none of its groups would fit.
    const [pod] = (
      await core.listNamespacedPod({
        namespace: platform.namespace,
        labelSelector: `batch.kubernetes.io/job-name=${trainingJobName(jobId)}`,
      })
    ).items;
    const verdict =
      "pod didn't trigger scale-up (it wouldn't fit if a new node is added): 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector";
    const now = new Date();
    await core.createNamespacedEvent({
      namespace: platform.namespace,
      body: {
        metadata: { generateName: `${pod?.metadata?.name}.` },
        involvedObject: {
          apiVersion: "v1",
          kind: "Pod",
          name: pod?.metadata?.name,
          namespace: platform.namespace,
          uid: pod?.metadata?.uid,
        },
        reason: "NotTriggerScaleUp",
        message: verdict,
        type: "Normal",
        source: { component: "cluster-autoscaler" },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
    const failed = await failedFast(jobId);
    expect(failed.message).toBe(`no node could ever run this job: cluster-autoscaler: ${verdict}`);
    await expectDeliveredExactlyOnce(jobId);
  });
});

/** A GPU node kwok runs, of a gpu-type of its own; returns its name. */
async function addGpuNode(gpuType: string, gpus: number): Promise<string> {
  const name = `gpu-${gpuType}-${RUN}`;
  const resources = { cpu: "32", memory: "128Gi", pods: "110", "nvidia.com/gpu": String(gpus) };
  await core.createNode({
    body: {
      metadata: {
        name,
        annotations: { "kwok.x-k8s.io/node": "fake" },
        labels: { "kubernetes.io/hostname": name, type: "kwok", accelerator: "nvidia-gpu", "gpu-type": gpuType },
      },
      spec: { taints: [{ key: "nvidia.com/gpu", value: "true", effect: "NoSchedule" }] },
      status: { capacity: resources, allocatable: resources },
    },
  });
  return name;
}

/** Waits for the job to fail fast because no node fits it: suspended, and its pods gone. */
async function failedFast(jobId: number): Promise<JobStatus> {
  const failed = await until("the job to fail", async () => {
    const current = await status(jobId);
    return current.phase === "failed" ? current : undefined;
  });
  expect(failed.reason).toBe("NoNodeFits");
  const name = trainingJobName(jobId);
  expect((await batch.readNamespacedJob({ name, namespace: platform.namespace })).spec?.suspend).toBe(true);
  await until("its pods to go", async () => {
    const pods = await core.listNamespacedPod({ namespace: platform.namespace, labelSelector: `batch.kubernetes.io/job-name=${name}` });
    return pods.items.length === 0;
  });
  return failed;
}

/**
 * Kills kube-apiserver (SIGKILL: a crash, not a shutdown) and returns a function that
 * starts it again exactly as test/cluster/up.sh did: same argv, environment, working
 * folder and log, and its pid where down.sh looks for it.
 */
function killApiServer(): () => Promise<void> {
  const clusterDir = dirname(inject("kubeconfig"));
  const pidFile = join(clusterDir, "pids", "kube-apiserver.pid");
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  const nul = (file: string) => readFileSync(`/proc/${pid}/${file}`, "utf8").split("\0").filter(Boolean);
  const [command, ...args] = nul("cmdline") as [string, ...string[]];
  const env = Object.fromEntries(nul("environ").map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]));
  const cwd = realpathSync(`/proc/${pid}/cwd`);
  process.kill(pid, "SIGKILL");
  return async () => {
    await until(
      "the old kube-apiserver to exit",
      () => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z"),
    );
    const log = openSync(join(clusterDir, "logs", "kube-apiserver.log"), "a");
    const child = spawn(command, args, { cwd, env, detached: true, stdio: ["ignore", log, log] });
    child.unref();
    writeFileSync(pidFile, `${child.pid}\n`);
    const version = kubeConfig.makeApiClient(VersionApi);
    await until(
      "kube-apiserver to answer again",
      async () =>
        version.getCode().then(
          () => true,
          () => false,
        ),
      90_000,
    );
  };
}

/** Reads server-sent events until `enough` says stop; returns them parsed. */
async function readEvents(
  url: string,
  headers: Record<string, string>,
  enough: (events: { id: string; data: { jobId: number; sequence: number; phase: string } }[]) => boolean,
) {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { ...auth, ...headers }, signal: controller.signal });
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("text/event-stream");
  const events: { id: string; data: { jobId: number; sequence: number; phase: string } }[] = [];
  let buffer = "";
  const timer = setTimeout(() => controller.abort(), 60_000);
  try {
    for await (const chunk of response.body ?? []) {
      buffer += Buffer.from(chunk).toString();
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const id = block.match(/^id: (.*)$/m)?.[1];
        const data = block.match(/^data: (.*)$/m)?.[1];
        if (id !== undefined && data !== undefined) events.push({ id, data: JSON.parse(data) });
        end = buffer.indexOf("\n\n");
      }
      if (enough(events)) break;
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return events;
}

describe("server-sent events", () => {
  it("streams a job's transitions live and resumes with Last-Event-ID", async () => {
    const jobId = await submit({ "kwok-run-duration": "2s" });
    const done = (events: { data: { phase: string } }[]) => events.some((event) => event.data.phase === "completed");
    const events = await readEvents(`${base}/v1/jobs/${jobId}/events`, {}, done);
    expect(events.map((event) => event.id)).toEqual(events.map((_, index) => String(index + 1)));
    expect(events.map((event) => event.data.phase)).toEqual((await status(jobId)).transitions.map((t) => t.phase));

    const resumed = await readEvents(`${base}/v1/jobs/${jobId}/events`, { "last-event-id": "1" }, done);
    expect(resumed.map((event) => event.id)).toEqual(events.slice(1).map((event) => event.id));
  });

  it("numbers a job's history after a dispatcher restart as it was pushed: SSE ids are the callbacks' sequences", async () => {
    const jobId = await submit({ "kwok-run-duration": "60s" });
    await until("running", async () => (await status(jobId)).phase === "running");
    expect((await fetch(`${base}/v1/jobs/${jobId}/stop`, { method: "POST", headers: auth })).status).toBe(200);
    // The stop's message changes once the trainer has gone: an update, numbered after the stop itself.
    await expectDeliveredExactlyOnce(jobId);
    await until("the stop's update delivered", () => backend.of(jobId).at(-1)?.message === "stopped on request");
    const delivered = backend.of(jobId);
    await until("its record", async () => (await deliveredAnnotation(jobId)) === delivered.length);
    await stopDispatcher();
    await startDispatcher();
    const stopped = (events: { data: { phase: string } }[]) => events.some((event) => event.data.phase === "stopped");
    const events = await readEvents(`${base}/v1/jobs/${jobId}/events`, {}, stopped);
    const final = await status(jobId);
    // Each transition GET holds, under the number the backend got it with last.
    const numberOf = (transition: { phase: string; reason: string; at: string }) =>
      delivered.findLast((call) => call.status === transition.phase && call.reason === transition.reason && call.at === transition.at)
        ?.sequence;
    expect(events.map((event) => Number(event.id))).toEqual(final.transitions.map(numberOf));
    expect(backend.of(jobId)).toHaveLength(delivered.length);
  });

  it("streams all jobs with filters, resumable by position", async () => {
    const jobId = await submit();
    const finished = (events: { data: { jobId: number; phase: string } }[]) =>
      events.some((event) => event.data.jobId === jobId && event.data.phase === "completed");
    const all = await readEvents(`${base}/v1/events?projectId=77`, {}, finished);
    expect(all.every((event) => event.data.jobId > 0)).toBe(true);
    const ours = all.filter((event) => event.data.jobId === jobId);
    expect(ours.map((event) => event.data.sequence)).toEqual(ours.map((_, index) => index + 1));

    const from = ours[0]?.id as string;
    const resumed = await readEvents(`${base}/v1/events?projectId=77`, { "last-event-id": from }, finished);
    expect(resumed.map((event) => event.id)).not.toContain(from);
    expect(resumed.filter((event) => event.data.jobId === jobId).map((event) => event.id)).toEqual(ours.slice(1).map((event) => event.id));

    const none = await fetch(`${base}/v1/events?projectId=x`, { headers: auth });
    expect(none.status).toBe(400);
  });
});
