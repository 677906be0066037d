// The local executor end to end: the real smoke trainer (images/smoke-trainer/train.py)
// runs as a python3 subprocess with the arguments and environment a pod would get,
// behind the real HTTP routes.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalExecutor } from "../../dispatcher/executors/local-executor.ts";
import { buildServer } from "../../dispatcher/http/server.ts";
import type { JobStatus } from "../../dispatcher/status/status-model.ts";

const token = "local-test-token";
const auth = { authorization: `Bearer ${token}` };
const trainerDir = resolve(import.meta.dirname, "../../images/smoke-trainer");
const workDir = mkdtempSync(join(tmpdir(), "local-executor-"));

async function openServer() {
  const local = await LocalExecutor.open({ trainerDir, python: "python3", workDir, graceSeconds: 5, environment: {} });
  return buildServer({ apiToken: token, bodyLimitBytes: 256 * 1024, defaultExecutor: "local", executors: { local } });
}

let app: Awaited<ReturnType<typeof openServer>>;
beforeAll(async () => {
  app = await openServer();
});
afterAll(() => app.close());

function request(jobId: number, smoke: Record<string, number> = {}, epochs = 3) {
  return {
    jobId,
    projectId: 7,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    epochs,
    advancedConfig: { smoke: { epoch_seconds: 0.05, ...smoke } },
  };
}

const submit = (body: unknown) => app.inject({ method: "POST", url: "/v1/jobs", headers: auth, payload: body as object });
const status = async (jobId: number): Promise<JobStatus> =>
  (await app.inject({ method: "GET", url: `/v1/jobs/${jobId}`, headers: auth })).json();

async function until(jobId: number, done: (s: JobStatus) => boolean, timeoutMs = 20_000): Promise<JobStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await status(jobId);
    if (done(current)) return current;
    if (Date.now() > deadline) throw new Error(`job ${jobId} never got there; last status ${JSON.stringify(current)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("local executor", () => {
  it("runs a job to completion, with its log and checkpoint", async () => {
    const created = await submit(request(101));
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ jobId: 101, executor: "local", name: "training-job-101" });

    const final = await until(101, (s) => s.phase === "completed");
    expect(final).toMatchObject({ reason: "Succeeded", attempts: 1, lastExitCode: 0 });
    expect(final.transitions.map((t) => t.phase)).toEqual(["pending", "running", "completed"]);
    expect(Date.parse(final.completionTime ?? "")).toBeGreaterThanOrEqual(Date.parse(final.startTime ?? ""));

    const logs = await app.inject({ method: "GET", url: "/v1/jobs/101/logs", headers: auth });
    expect(logs.statusCode).toBe(200);
    expect(logs.body).toMatch(/epoch 1\/3 loss=/);
    expect(logs.body).toMatch(/epoch 3\/3 loss=/);
    const tail = await app.inject({ method: "GET", url: "/v1/jobs/101/logs?tailLines=1", headers: auth });
    expect(tail.body.trim().split("\n")).toHaveLength(1);

    const checkpoint = JSON.parse(readFileSync(join(workDir, "training-job-101/output/checkpoints/last.pt"), "utf8"));
    expect(checkpoint).toMatchObject({ epoch: 3, job_id: 101, model_name: "resnet18" });
  });

  it("is idempotent on jobId and answers 409 naming what differs", async () => {
    const again = await submit(request(101));
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ jobId: 101, phase: "completed" });

    const different = await submit({ ...request(101), epochs: 4 });
    expect(different.statusCode).toBe(409);
    expect(different.json().error).toMatchObject({ code: "conflict", field: "epochs" });
    expect(different.json().error.message).toContain("epochs");
  });

  it("reports a failing trainer as failed with its exit code", async () => {
    expect((await submit(request(102, { fail_at_epoch: 2, exit_code: 7 }))).statusCode).toBe(201);
    const final = await until(102, (s) => s.phase === "failed");
    expect(final).toMatchObject({ reason: "Error", lastExitCode: 7, message: "trainer exited with code 7" });
  });

  it("tells a configuration error (exit 3) from a crash", async () => {
    expect((await submit(request(103, { epoch_seconds: -1 }))).statusCode).toBe(201);
    const final = await until(103, (s) => s.phase === "failed");
    expect(final).toMatchObject({ reason: "ConfigurationError", lastExitCode: 3 });
  });

  it("stops a running job gracefully: the trainer checkpoints on SIGTERM and the job stays queryable", async () => {
    expect((await submit(request(104, { epoch_seconds: 0.5 }, 100))).statusCode).toBe(201);
    const checkpoint = join(workDir, "training-job-104/output/checkpoints/last.pt");
    await until(104, () => existsSync(checkpoint));

    const stopped = await app.inject({ method: "POST", url: "/v1/jobs/104/stop", headers: auth });
    expect(stopped.statusCode).toBe(200);
    expect(stopped.json()).toMatchObject({ phase: "stopped", reason: "StoppedByUser" });

    const logs = await app.inject({ method: "GET", url: "/v1/jobs/104/logs?follow=true", headers: auth });
    expect(logs.body).toMatch(/SIGTERM: checkpoint at epoch \d+ written/);
    const after = await status(104);
    expect(after).toMatchObject({ phase: "stopped", lastExitCode: 143 });
    expect(JSON.parse(readFileSync(checkpoint, "utf8")).epoch).toBeLessThan(100);

    const again = await app.inject({ method: "POST", url: "/v1/jobs/104/stop", headers: auth });
    expect(again.json()).toMatchObject({ phase: "stopped" });
    const finished = await app.inject({ method: "POST", url: "/v1/jobs/101/stop", headers: auth });
    expect(finished.statusCode).toBe(409);
  });

  it("tells an unknown job from one without output, and lists with filters", async () => {
    expect((await app.inject({ method: "GET", url: "/v1/jobs/999/logs", headers: auth })).statusCode).toBe(404);
    const failed = await app.inject({ method: "GET", url: "/v1/jobs?phase=failed&projectId=7", headers: auth });
    expect(failed.json().jobs.map((j: JobStatus) => j.jobId)).toEqual([102, 103]);
    const page = await app.inject({ method: "GET", url: "/v1/jobs?limit=2", headers: auth });
    expect(page.json().jobs.map((j: JobStatus) => j.jobId)).toEqual([101, 102]);
    const next = await app.inject({ method: "GET", url: `/v1/jobs?limit=2&pageToken=${page.json().nextPageToken}`, headers: auth });
    expect(next.json().jobs.map((j: JobStatus) => j.jobId)).toEqual([103, 104]);
  });

  it("keeps history across a restart and reports a run that was in flight as lost", async () => {
    expect((await submit(request(105, { epoch_seconds: 5 }, 100))).statusCode).toBe(201);
    await until(105, (s) => s.phase === "running");
    // A second dispatcher on the same folder: the first one's child is not its own.
    const restarted = await openServer();
    try {
      const get = async (jobId: number) => (await restarted.inject({ method: "GET", url: `/v1/jobs/${jobId}`, headers: auth })).json();
      expect(await get(101)).toMatchObject({ phase: "completed", lastExitCode: 0 });
      expect(await get(102)).toMatchObject({ phase: "failed", lastExitCode: 7 });
      expect(await get(105)).toMatchObject({ phase: "failed", reason: "Lost" });
    } finally {
      await restarted.close();
      await app.inject({ method: "POST", url: "/v1/jobs/105/stop", headers: auth });
    }
  });
});
