// The API server's refusals through the dispatcher's routes, each by what it means for the
// caller: a namespace whose Job-count quota is full (429, the quota's words), a page token the
// API server cannot read (400 naming pageToken), a namespace that does not exist (the platform
// chart not applied: said at start-up, by /readyz and by every route, with the fix), and an
// API server that does not answer (503).
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { BatchV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { platformSettings } from "../../charts-ts/settings.ts";
import { KubernetesExecutor } from "../../dispatcher/executors/kubernetes-executor.ts";
import { buildServer } from "../../dispatcher/http/server.ts";
import { applyPlatform } from "./platform.ts";
import { until } from "./until.ts";

const kubeconfigPath = inject("kubeconfig");
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(kubeconfigPath);
const core = kubeConfig.makeApiClient(CoreV1Api);
const RUN = `e${Date.now().toString(36)}`;
let nextJobId = (Date.now() % 1_000_000) * 100 + 40;

const token = "integration-token";
const auth = { authorization: `Bearer ${token}` };

/** The routes over a Kubernetes executor for `namespace` on `config`. */
function dispatcherFor(namespace: string, config: KubeConfig = kubeConfig) {
  const executor = new KubernetesExecutor({ kubeConfig: config, platform: platformSettings({ namespace }) });
  const app = buildServer({
    apiToken: token,
    bodyLimitBytes: 256 * 1024,
    defaultExecutor: "kubernetes",
    executors: { kubernetes: executor },
  });
  return { executor, app };
}

function request(jobId = ++nextJobId) {
  return {
    jobId,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    resources: { gpu: 0, cpu: "1", memory: "1Gi", cpuRequest: "100m", memoryRequest: "128Mi" },
    labels: { "test-run": RUN },
  };
}

beforeAll(() => applyPlatform(kubeConfig));

describe("a namespace whose Job-count quota is full", () => {
  const namespace = `quota-${RUN}`;
  const { app } = dispatcherFor(namespace);
  const submit = (body: unknown) => app.inject({ method: "POST", url: "/v1/jobs", headers: auth, payload: body as object });

  beforeAll(async () => {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await core.createNamespacedResourceQuota({
      namespace,
      body: { metadata: { name: "jobs" }, spec: { hard: { "count/jobs.batch": "2" } } },
    });
    // Until the quota controller has counted, the API server refuses every Job ("status unknown").
    await until("the quota counted", async () => (await core.readNamespacedResourceQuota({ name: "jobs", namespace })).status?.used);
  });
  afterAll(async () => {
    await app.close();
    await core.deleteNamespace({ name: namespace });
  });

  it("answers 429 quota_exceeded with the quota's words, and creates nothing", async () => {
    expect((await submit(request())).statusCode).toBe(201);
    expect((await submit(request())).statusCode).toBe(201);
    const third = request();
    const refused = await submit(third);
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error.code).toBe("quota_exceeded");
    expect(refused.json().error.message).toMatch(/exceeded quota: jobs, requested: count\/jobs\.batch=1, used: count\/jobs\.batch=2/);
    const jobs = await kubeConfig.makeApiClient(BatchV1Api).listNamespacedJob({ namespace });
    expect(jobs.items.map((job) => job.metadata?.name)).not.toContain(`training-job-${third.jobId}`);
    // A dry run shows the same refusal as the API server's verdict.
    const dryRun = await app.inject({ method: "POST", url: "/v1/jobs?dryRun=true", headers: auth, payload: third });
    expect(dryRun.json().verdict).toMatchObject({ accepted: false, statusCode: 403 });
    expect(dryRun.json().verdict.message).toContain("exceeded quota");
  });
});

describe("a page token the API server cannot read", () => {
  const { app } = dispatcherFor(platformSettings({}).namespace);
  afterAll(() => app.close());

  it("answers 400 naming pageToken, with the API server's words", async () => {
    const response = await app.inject({ method: "GET", url: "/v1/jobs?pageToken=kubernetes:not-a-continue-token", headers: auth });
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toMatchObject({ code: "invalid_request", field: "pageToken" });
    expect(response.json().error.message).toMatch(/^pageToken: .*continue/);
  });
});

describe("a training namespace that does not exist (the platform chart not applied)", () => {
  const namespace = `absent-${RUN}`;
  const fix = `the namespace "${namespace}" does not exist: apply the platform chart: kubectl apply -f dist/platform.k8s.yaml`;
  const { app, executor } = dispatcherFor(namespace);
  afterAll(() => app.close());

  it("is not ready, and /readyz names the fix", async () => {
    expect(await executor.ready()).toEqual({ ready: false, reason: expect.stringContaining(fix) });
    const readyz = await app.inject({ method: "GET", url: "/readyz" });
    expect(readyz.statusCode).toBe(503);
    expect(readyz.json().executors.kubernetes.reason).toContain(fix);
  });

  it("refuses a submission with 503 naming the fix", async () => {
    const response = await app.inject({ method: "POST", url: "/v1/jobs", headers: auth, payload: request() });
    expect(response.statusCode).toBe(503);
    expect(response.json().error).toMatchObject({ code: "kubernetes_unavailable", message: expect.stringContaining(fix) });
    const dryRun = await app.inject({ method: "POST", url: "/v1/jobs?dryRun=true", headers: auth, payload: request() });
    expect(dryRun.statusCode).toBe(503);
    expect(dryRun.json().error.message).toContain(fix);
  });

  it("says so at start-up, and the started dispatcher's /readyz says it too", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [resolve(import.meta.dirname, "../../dispatcher/main.ts")], {
      env: {
        PATH: process.env.PATH,
        DISPATCHER_API_TOKEN: token,
        KUBECONFIG: kubeconfigPath,
        TRAINING_NAMESPACE: namespace,
        PORT: String(port),
        HOST: "127.0.0.1",
        LOCAL_WORK_DIR: mkdtempSync(join(tmpdir(), "absent-namespace-")),
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      // Everything it logs before it listens.
      const startUp: { level: number; msg: string }[] = [];
      for await (const line of createInterface({ input: child.stdout })) {
        startUp.push(JSON.parse(line));
        if (startUp.at(-1)?.msg.startsWith("Server listening")) break;
      }
      expect(startUp.filter((entry) => entry.level >= 50)).toEqual([
        expect.objectContaining({ executor: "kubernetes", msg: expect.stringContaining(fix) }),
      ]);
      const readyz = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(readyz.status).toBe(503);
      expect(await readyz.json()).toMatchObject({
        executors: { kubernetes: { ready: false, reason: expect.stringContaining(fix) }, local: { ready: true } },
      });
    } finally {
      child.kill("SIGTERM");
    }
  });
});

describe("an API server that does not answer", () => {
  const unreachable = new KubeConfig();
  unreachable.loadFromOptions({
    clusters: [{ name: "gone", server: "https://127.0.0.1:1", skipTLSVerify: true }],
    users: [{ name: "gone", token: "x" }],
    contexts: [{ name: "gone", cluster: "gone", user: "gone" }],
    currentContext: "gone",
  });
  const { app } = dispatcherFor("training", unreachable);
  afterAll(() => app.close());

  it("is 503 kubernetes_unavailable on every route, and not ready", async () => {
    for (const [method, url] of [
      ["GET", "/v1/jobs/5"],
      ["POST", "/v1/jobs/5/stop"],
    ] as const) {
      const response = await app.inject({ method, url, headers: auth });
      expect(response.statusCode, url).toBe(503);
      expect(response.json().error.code, url).toBe("kubernetes_unavailable");
    }
    // A list answers with what the executors that did answer hold, and names the one that did not.
    const list = await app.inject({ method: "GET", url: "/v1/jobs", headers: auth });
    expect(list.statusCode).toBe(200);
    expect(list.json().unavailableExecutors).toEqual([
      { executor: "kubernetes", message: expect.stringContaining("the Kubernetes API failed") },
    ]);
    const submitted = await app.inject({ method: "POST", url: "/v1/jobs", headers: auth, payload: request() });
    expect(submitted.statusCode).toBe(503);
    const readyz = await app.inject({ method: "GET", url: "/readyz" });
    expect(readyz.statusCode).toBe(503);
    expect(readyz.json().executors.kubernetes.reason).toContain("the Kubernetes API is unavailable");
  });
});

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === "object" && address ? address.port : 0));
    });
  });
}
