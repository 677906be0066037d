// The front door against the real control plane: the dispatcher as its own process
// (`node dispatcher/main.ts`, as deployed) whose clients hang up in mid-stream, and the
// executor registry keeping one jobId on one executor when Kubernetes holds it.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BatchV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { platformSettings } from "../../charts-ts/settings.ts";
import { KubernetesExecutor } from "../../dispatcher/executors/kubernetes-executor.ts";
import { LocalExecutor } from "../../dispatcher/executors/local-executor.ts";
import { buildServer } from "../../dispatcher/http/server.ts";
import { startLiveStatus } from "../../dispatcher/live/live-status.ts";
import { noLog } from "../../dispatcher/log.ts";
import type { JobStatus } from "../../dispatcher/status/status-model.ts";
import { applyPlatform } from "./platform.ts";
import { until } from "./until.ts";

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(inject("kubeconfig"));
const batch = kubeConfig.makeApiClient(BatchV1Api);
const platform = platformSettings({});
const token = "front-door-integration-token";
const auth = { authorization: `Bearer ${token}` };
const RUN = `f${Date.now().toString(36)}`;
let nextJobId = (Date.now() % 1_000_000) * 100 + 70;
const repoRoot = resolve(import.meta.dirname, "..", "..");

function request(jobId: number, labels: Record<string, string> = {}) {
  return {
    jobId,
    projectId: 43,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    resources: { gpu: 1 },
    labels: { "test-run": RUN, ...labels },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

let dispatcher: ChildProcess;
let base: string;
let output = "";

beforeAll(async () => {
  await applyPlatform(kubeConfig);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  dispatcher = spawn(process.execPath, ["dispatcher/main.ts"], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH,
      KUBECONFIG: inject("kubeconfig"),
      DISPATCHER_API_TOKEN: token,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOCAL_WORK_DIR: mkdtempSync(join(tmpdir(), "front-door-local-")),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  dispatcher.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  dispatcher.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  await until("the dispatcher to listen", async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.ok);
});

afterAll(async () => {
  dispatcher?.kill("SIGTERM");
  const jobs = await batch.listNamespacedJob({ namespace: platform.namespace, labelSelector: `test-run=${RUN}` });
  await Promise.all(
    jobs.items.map((job) =>
      batch.deleteNamespacedJob({ name: job.metadata?.name ?? "", namespace: platform.namespace, propagationPolicy: "Background" }),
    ),
  );
});

async function submitRunning(): Promise<number> {
  const jobId = ++nextJobId;
  const created = await fetch(`${base}/v1/jobs`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(request(jobId, { "kwok-run-duration": "120s" })),
  });
  expect(created.status).toBe(201);
  await until("the job to run", async () => {
    const status = (await (await fetch(`${base}/v1/jobs/${jobId}`, { headers: auth })).json()) as JobStatus;
    return status.phase === "running";
  });
  return jobId;
}

/** Opens a stream, waits for its first bytes, then hangs up; resolves once the dispatcher has seen the close. */
function readThenHangUp(path: string): Promise<{ status: number; first: string }> {
  return new Promise((done, fail) => {
    const call = httpRequest(`${base}${path}`, { headers: auth }, (response) => {
      response.once("data", (chunk) => {
        call.destroy();
        done({ status: response.statusCode ?? 0, first: String(chunk) });
      });
    });
    call.on("error", (error) => {
      if (!call.destroyed) fail(error);
    });
    call.end();
  });
}

/** The dispatcher is still the same living process and answers. */
async function stillServing(): Promise<void> {
  for (let round = 0; round < 5; round += 1) {
    const health = await fetch(`${base}/healthz`).catch((error: Error) => error);
    expect(health instanceof Error ? `${health.message}\n${output.slice(-3000)}` : health.status).toBe(200);
  }
  expect(dispatcher.exitCode, output.slice(-3000)).toBeNull();
}

describe("clients that hang up", () => {
  it("a followed log of a running Kubernetes job, abandoned, leaves the dispatcher serving", async () => {
    const jobId = await submitRunning();
    for (let round = 0; round < 3; round += 1) {
      const { status, first } = await readThenHangUp(`/v1/jobs/${jobId}/logs?follow=true`);
      expect(status).toBe(200);
      expect(first.length).toBeGreaterThan(0);
      // The hang-up reaches the dispatcher's log as the request's end; only then can a crash have happened.
      await until(
        "the dispatcher to finish the abandoned request",
        () => output.split("request completed").length > round + 1 || undefined,
      );
      await stillServing();
    }
    expect(output).not.toMatch(/AbortError|unhandled error/);
  });

  it("following a finished job's log returns the log and ends", async () => {
    const jobId = ++nextJobId;
    const created = await fetch(`${base}/v1/jobs`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify(request(jobId)),
    });
    expect(created.status).toBe(201);
    await until("the job to complete", async () => {
      const status = (await (await fetch(`${base}/v1/jobs/${jobId}`, { headers: auth })).json()) as JobStatus;
      return status.phase === "completed";
    });
    // Bounded only so that a stream that never ends fails here instead of hanging the file.
    const response = await fetch(`${base}/v1/jobs/${jobId}/logs?follow=true`, { headers: auth, signal: AbortSignal.timeout(30_000) });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-log-state")).toBe("output");
    expect(await response.text()).toMatch(/epoch 1\/3/);
  });

  it("an event stream, abandoned, is torn down and the dispatcher keeps serving", async () => {
    const jobId = await submitRunning();
    const { status, first } = await readThenHangUp(`/v1/jobs/${jobId}/events`);
    expect(status).toBe(200);
    expect(first).toMatch(/^: connected/);
    await stillServing();
    expect(output).not.toMatch(/unhandled error/);
  });
});

describe("event streams end with their client", () => {
  it("unsubscribes an abandoned stream from the live feed; refuses a local job's stream", async () => {
    const live = await startLiveStatus({ kubeConfig, namespace: platform.namespace, log: noLog });
    // Counts subscriptions on the real feed: each stream holds one until it is torn down.
    let subscribed = 0;
    const subscribe = live.feed.subscribe.bind(live.feed);
    live.feed.subscribe = (filter, lastEventId, send) => {
      subscribed += 1;
      const unsubscribe = subscribe(filter, lastEventId, send);
      return () => {
        subscribed -= 1;
        return unsubscribe();
      };
    };
    const workDir = mkdtempSync(join(tmpdir(), "front-door-events-"));
    const local = await LocalExecutor.open({ trainerDir: workDir, python: "false", workDir, graceSeconds: 1, environment: {} });
    const app = buildServer({
      apiToken: token,
      bodyLimitBytes: 256 * 1024,
      defaultExecutor: "kubernetes",
      executors: { kubernetes: new KubernetesExecutor({ kubeConfig, platform }), local },
      feed: live.feed,
    });
    const url = await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      // A local job has no live events: its stream is refused, not left silent.
      const localJob = ++nextJobId;
      const created = await app.inject({
        method: "POST",
        url: "/v1/jobs",
        headers: auth,
        payload: { ...request(localJob), executor: "local" },
      });
      expect(created.statusCode).toBe(201);
      const refused = await app.inject({ method: "GET", url: `/v1/jobs/${localJob}/events`, headers: auth });
      expect(refused.statusCode).toBe(404);
      expect(refused.json().error.message).toMatch(/local executor/);

      for (const path of ["/v1/events", "/v1/events?projectId=43"]) {
        await new Promise<void>((done, fail) => {
          const call = httpRequest(`${url}${path}`, { headers: auth }, (response) => {
            response.once("data", () => {
              expect(subscribed).toBe(1);
              call.destroy();
              done();
            });
          });
          call.on("error", (error) => {
            if (!call.destroyed) fail(error);
          });
          call.end();
        });
        await until("the stream to be torn down", () => subscribed === 0);
      }
    } finally {
      await app.close();
      await live.stop();
    }
  });
});

describe("one jobId, one executor", () => {
  it("refuses a local job whose jobId Kubernetes holds, naming the kubernetes executor", async () => {
    const workDir = mkdtempSync(join(tmpdir(), "front-door-registry-"));
    const local = await LocalExecutor.open({ trainerDir: workDir, python: "false", workDir, graceSeconds: 1, environment: {} });
    const app = buildServer({
      apiToken: token,
      bodyLimitBytes: 256 * 1024,
      defaultExecutor: "kubernetes",
      executors: { kubernetes: new KubernetesExecutor({ kubeConfig, platform }), local },
    });
    try {
      const jobId = ++nextJobId;
      expect((await app.inject({ method: "POST", url: "/v1/jobs", headers: auth, payload: request(jobId) })).statusCode).toBe(201);
      const twin = await app.inject({ method: "POST", url: "/v1/jobs", headers: auth, payload: { ...request(jobId), executor: "local" } });
      expect(twin.statusCode).toBe(409);
      expect(twin.json().error).toMatchObject({
        code: "conflict",
        field: "executor",
        message: expect.stringContaining("kubernetes executor"),
      });
      expect(await local.get(jobId)).toBeUndefined();
      const got = await app.inject({ method: "GET", url: `/v1/jobs/${jobId}`, headers: auth });
      expect(got.json()).toMatchObject({ jobId, executor: "kubernetes" });
    } finally {
      await app.close();
    }
  });
});
