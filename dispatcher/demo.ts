/**
 * `npm run demo`: the quick start's one job, with nothing but this checkout and python3.
 * Starts the dispatcher on a free port with the local executor and the smoke trainer,
 * submits the plan's Full Example request over HTTP as the backend would (shortened to
 * 5 quick epochs), streams its log, and prints the final status. Exits non-zero unless
 * the job completes.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PLAN_FULL_EXAMPLE } from "../charts-ts/samples.ts";
import { LocalExecutor } from "./executors/local-executor.ts";
import { buildServer } from "./http/server.ts";
import { type JobStatus, TERMINAL_PHASES } from "./status/status-model.ts";

const token = "demo-token";
const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
const workDir = mkdtempSync(join(tmpdir(), "training-demo-"));

const local = await LocalExecutor.open({
  trainerDir: resolve(import.meta.dirname, "../images/smoke-trainer"),
  python: process.env.LOCAL_PYTHON ?? "python3",
  workDir,
  graceSeconds: 5,
  environment: {},
});
const server = buildServer({ apiToken: token, bodyLimitBytes: 256 * 1024, defaultExecutor: "local", executors: { local } });
const base = await server.listen({ port: 0, host: "127.0.0.1" });

try {
  const request = {
    ...PLAN_FULL_EXAMPLE,
    epochs: 5,
    advancedConfig: { ...PLAN_FULL_EXAMPLE.advancedConfig, smoke: { epoch_seconds: 0.3 } },
  };
  console.log(`dispatcher on ${base} (local executor, smoke trainer); POST /v1/jobs for job ${request.jobId}`);
  const submitted = await fetch(`${base}/v1/jobs`, { method: "POST", headers, body: JSON.stringify(request) });
  if (submitted.status !== 201) throw new Error(`submit answered ${submitted.status}: ${await submitted.text()}`);

  const logs = await fetch(`${base}/v1/jobs/${request.jobId}/logs?follow=true`, { headers });
  for await (const chunk of logs.body ?? [])
    process.stdout.write(`  | ${Buffer.from(chunk).toString().trimEnd().replaceAll("\n", "\n  | ")}\n`);

  // The log ends with the process; its last transition is recorded a moment later.
  let status = (await (await fetch(`${base}/v1/jobs/${request.jobId}`, { headers })).json()) as JobStatus;
  while (!TERMINAL_PHASES.has(status.phase)) {
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    status = (await (await fetch(`${base}/v1/jobs/${request.jobId}`, { headers })).json()) as JobStatus;
  }
  console.log(JSON.stringify(status, null, 2));
  console.log(`job ${status.jobId} ${status.phase}; its files are in ${join(workDir, status.name)}`);
  process.exitCode = status.phase === "completed" ? 0 : 1;
} finally {
  await server.close();
}
