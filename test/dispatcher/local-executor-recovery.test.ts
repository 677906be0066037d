// The local executor's start-up over a work folder a crash left behind: an empty or torn
// request.json, a half-written last line of transitions.jsonl. Start-up must go on, say what
// it skipped, and leave the folder so that the next start (and the next write) is clean.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../charts-ts/canonical-json.ts";
import { trainingRequest } from "../../charts-ts/request.ts";
import { LocalExecutor } from "../../dispatcher/executors/local-executor.ts";
import type { Log, LogLevel } from "../../dispatcher/log.ts";
import { transitionSchema } from "../../dispatcher/status/status-model.ts";

const trainerDir = resolve(import.meta.dirname, "../../images/smoke-trainer");

interface Entry {
  readonly level: LogLevel;
  readonly message: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

function recorder(): { log: Log; entries: Entry[] } {
  const entries: Entry[] = [];
  return { entries, log: (level, message, fields = {}) => entries.push({ level, message, fields }) };
}

const open = (workDir: string, log: Log) =>
  LocalExecutor.open({ trainerDir, python: "python3", workDir, graceSeconds: 5, environment: {}, log });

function request(jobId: number) {
  return trainingRequest({
    jobId,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "datasets/flowers", format: "imagefolder" },
    epochs: 1,
    advancedConfig: { smoke: { epoch_seconds: 0.01 } },
  });
}

const at = "2026-11-30T12:00:00.000Z";
const line = (phase: string, reason: string) => `${JSON.stringify({ phase, reason, at })}\n`;

/** A job folder as the executor writes it, with the files' contents given. */
function jobFolder(workDir: string, jobId: number, files: { request?: string; transitions?: string }): string {
  const dir = join(workDir, `training-job-${jobId}`);
  mkdirSync(dir, { recursive: true });
  if (files.request !== undefined) writeFileSync(join(dir, "request.json"), files.request);
  if (files.transitions !== undefined) writeFileSync(join(dir, "transitions.jsonl"), files.transitions);
  return dir;
}

/** Waits for the trainer to end, so no process outlives its test. */
async function finished(executor: LocalExecutor, jobId: number): Promise<void> {
  while ((await executor.get(jobId))?.phase !== "completed") await new Promise((resolveWait) => setTimeout(resolveWait, 50));
}

describe("local executor start-up after a crash mid-write", () => {
  it("skips an empty or torn request.json with a logged error, moves the folder aside and frees the jobId", async () => {
    const workDir = mkdtempSync(join(tmpdir(), "local-recovery-"));
    jobFolder(workDir, 201, {
      request: canonicalJson(request(201)),
      transitions: line("pending", "Created") + line("running", "Started") + line("completed", "Succeeded"),
    });
    jobFolder(workDir, 202, { request: "" });
    jobFolder(workDir, 203, { request: '{"jobId":203,"framework":"ti', transitions: line("pending", "Created") });
    const { log, entries } = recorder();

    const executor = await open(workDir, log);

    expect((await executor.get(201))?.phase).toBe("completed");
    expect(await executor.get(202)).toBeUndefined();
    expect(await executor.get(203)).toBeUndefined();
    const errors = entries.filter((entry) => entry.level === "error");
    expect(errors.map((entry) => entry.fields.file)).toEqual([
      join(workDir, "training-job-202", "request.json"),
      join(workDir, "training-job-203", "request.json"),
    ]);
    expect(errors[0]?.message).toMatch(/unreadable request\.json; skipping this job/);
    // The folders are kept for a person to look at, out of the way of the jobIds.
    const moved = readdirSync(workDir).filter((name) => name.includes(".unreadable-"));
    expect(moved.map((name) => name.split(".")[0]).sort()).toEqual(["training-job-202", "training-job-203"]);
    expect(errors.map((entry) => entry.fields.movedTo)).toEqual(moved.sort().map((name) => join(workDir, name)));

    const resubmitted = await executor.submit(request(202));
    expect(resubmitted.created).toBe(true);
    expect(JSON.parse(readFileSync(join(workDir, "training-job-202", "request.json"), "utf8")).jobId).toBe(202);
    await finished(executor, 202);

    // A second start finds nothing more to complain about.
    const again = recorder();
    await open(workDir, again.log);
    expect(again.entries.filter((entry) => entry.level !== "info")).toEqual([]);
  });

  it("skips a torn last line of transitions.jsonl with a warning and repairs the file before writing to it", async () => {
    const workDir = mkdtempSync(join(tmpdir(), "local-recovery-"));
    const dir = jobFolder(workDir, 204, {
      request: canonicalJson(request(204)),
      transitions: `${line("pending", "Created")}${line("running", "Started")}{"phase":"compl`,
    });
    const { log, entries } = recorder();

    const executor = await open(workDir, log);

    const status = await executor.get(204);
    expect(status).toMatchObject({ phase: "failed", reason: "Lost" });
    expect(status?.transitions.map((transition) => transition.phase)).toEqual(["pending", "running", "failed"]);
    expect(entries.filter((entry) => entry.level === "warn")).toEqual([
      {
        level: "warn",
        message: "torn line in transitions.jsonl skipped (a crash mid-write)",
        fields: { file: join(dir, "transitions.jsonl"), line: 3 },
      },
    ]);
    // Every line parses: the Lost transition was not glued onto the torn one.
    const lines = readFileSync(join(dir, "transitions.jsonl"), "utf8").split("\n");
    expect(lines.pop()).toBe("");
    expect(lines.map((text) => transitionSchema.parse(JSON.parse(text)).phase)).toEqual(["pending", "running", "failed"]);

    const again = recorder();
    const restarted = await open(workDir, again.log);
    expect(again.entries).toEqual([]);
    expect(await restarted.get(204)).toEqual(status);
  });

  it("writes request.json whole, through a temporary file that does not stay behind", async () => {
    const workDir = mkdtempSync(join(tmpdir(), "local-recovery-"));
    const executor = await open(workDir, recorder().log);
    await executor.submit(request(205));
    await finished(executor, 205);
    const dir = join(workDir, "training-job-205");
    expect(JSON.parse(readFileSync(join(dir, "request.json"), "utf8"))).toEqual(JSON.parse(canonicalJson(request(205))));
    expect(readdirSync(dir).filter((name) => name.includes(".tmp"))).toEqual([]);
    expect(existsSync(join(dir, "transitions.jsonl"))).toBe(true);
  });
});
