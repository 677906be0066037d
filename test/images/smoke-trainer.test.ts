// The smoke trainer, run with python3 on the command line the platform builds (trainerArgs).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "vitest";
import { type TrainingRequestInput, trainingRequest } from "../../charts-ts/request.ts";
import { CONFIGURATION_ERROR_EXIT_CODES, TRAINER_ENV, TRAINER_FIXED_ENV, trainerArgs } from "../../charts-ts/trainer-contract.ts";

const SCRIPT = "images/smoke-trainer/train.py";
const JOB_ID = 42;
const METRICS_LINE = /^epoch (\d+)\/(\d+) loss=\d+\.\d{3} accuracy=\d+\.\d{3}$/gm;
const [USAGE_ERROR, CONFIGURATION_ERROR] = CONFIGURATION_ERROR_EXIT_CODES;

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const SMALL_REQUEST: TrainingRequestInput = {
  jobId: JOB_ID,
  projectId: 7,
  framework: "timm",
  taskType: "image_classification",
  modelName: "resnet18",
  dataset: { path: "ds-flowers", format: "imagefolder" },
  numClasses: 102,
  epochs: 3,
  imageSize: 224,
  advancedConfig: { smoke: { epoch_seconds: 0 } },
};

/** train.py arguments for a small timm request; `epoch_seconds: 0` keeps runs fast. */
function smokeArgs(overrides: Partial<TrainingRequestInput> = {}, outputDir?: string): string[] {
  return trainerArgs(trainingRequest({ ...SMALL_REQUEST, ...overrides } as TrainingRequestInput), outputDir);
}

const epochsPrinted = (stdout: string) => [...stdout.matchAll(METRICS_LINE)].map((match) => Number(match[1]));

/**
 * A trainer with its own checkpoint folder. It gets the environment a pod gets,
 * except CHECKPOINT_DIR (the arguments say --output_dir=/workspace/output, which
 * does not exist here); nothing leaks in from this process (proxies, RESUME_FROM).
 */
function trainerIn(checkpointDir: string) {
  const start = (args: string[], env: Record<string, string> = {}) => {
    const child = spawn("python3", [SCRIPT, ...args], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        ...TRAINER_FIXED_ENV,
        HOME: checkpointDir,
        [TRAINER_ENV.checkpointDir]: checkpointDir,
        ...env,
      },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const finished = new Promise<Run>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
    return { child, finished };
  };
  return {
    checkpointDir,
    start,
    run: (args: string[], env: Record<string, string> = {}) => start(args, env).finished,
    lastCheckpoint: async (): Promise<{ epoch: number; job_id: number }> =>
      JSON.parse(await readFile(join(checkpointDir, "last.pt"), "utf8")),
    writeCheckpoint: (name: string, checkpoint: object) => writeFile(join(checkpointDir, name), JSON.stringify(checkpoint)),
  };
}

interface Received {
  readonly method: string;
  readonly contentType: string;
  readonly path: string;
  readonly body: Record<string, unknown>;
}

/** A real HTTP backend on 127.0.0.1 that records every request and answers 200. */
async function recordingBackend() {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8").on("data", (chunk: string) => {
      body += chunk;
    });
    request.on("end", () => {
      const { method = "", url = "", headers } = request;
      received.push({ method, contentType: headers["content-type"] ?? "", path: url, body: JSON.parse(body) });
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const jobPath = (endpoint: string) => `/api/v1/internal/training/jobs/${JOB_ID}/${endpoint}`;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    jobPath,
    bodiesAt: (endpoint: string) => received.filter((request) => request.path === jobPath(endpoint)).map((request) => request.body),
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const it = test
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern; it has none
  .extend("trainer", async ({}, { onCleanup }) => {
    const checkpointDir = await mkdtemp(join(tmpdir(), "smoke-trainer-"));
    onCleanup(() => rm(checkpointDir, { recursive: true, force: true }));
    return trainerIn(checkpointDir);
  })
  // biome-ignore lint/correctness/noEmptyPattern: as above
  .extend("backend", async ({}, { onCleanup }) => {
    const backend = await recordingBackend();
    onCleanup(backend.stop);
    return backend;
  });

// Every test has its own folder and backend, and python3 starts slowly: run them side by side.
describe.concurrent("smoke trainer", () => {
  describe("a run", () => {
    it("completes with exit 0, one metrics line and one checkpoint per epoch", async ({ trainer, expect }) => {
      const run = await trainer.run(smokeArgs({ epochs: 4 }));
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(epochsPrinted(run.stdout)).toEqual([1, 2, 3, 4]);
      expect(run.stdout).toContain("epoch 4/4 ");
      expect(await trainer.lastCheckpoint()).toMatchObject({ epoch: 4, job_id: JOB_ID });
    });

    it("writes checkpoints under <output_dir>/checkpoints when CHECKPOINT_DIR is not set", async ({ trainer, expect }) => {
      const outputDir = join(trainer.checkpointDir, "output");
      const run = await trainer.run(smokeArgs({ epochs: 1 }, outputDir), { [TRAINER_ENV.checkpointDir]: "" });
      expect(run.code).toBe(0);
      expect(existsSync(join(outputDir, "checkpoints", "last.pt"))).toBe(true);
    });

    it("fail_at_epoch exits with the configured code after the earlier epochs", async ({ trainer, expect }) => {
      const advancedConfig = { smoke: { epoch_seconds: 0, fail_at_epoch: 3, exit_code: 42 } };
      const run = await trainer.run(smokeArgs({ epochs: 5, advancedConfig }));
      expect(run.code).toBe(42);
      expect(epochsPrinted(run.stdout)).toEqual([1, 2]);
      expect(run.stderr).toContain("failing at epoch 3");
      expect((await trainer.lastCheckpoint()).epoch).toBe(2);
    });

    it("fail_at_epoch exits 1 when no exit code is configured", async ({ trainer, expect }) => {
      const run = await trainer.run(smokeArgs({ advancedConfig: { smoke: { epoch_seconds: 0, fail_at_epoch: 1 } } }));
      expect(run.code).toBe(1);
    });
  });

  describe("configuration errors exit with a code the Job does not retry", () => {
    it.for([
      ["an unknown flag", [...smokeArgs(), "--bogus=1"]],
      ["a value of the wrong type", [...smokeArgs(), "--epochs=ten"]],
      ["a non-positive epoch count", [...smokeArgs(), "--epochs=0"]],
      ["a missing required flag", smokeArgs().filter((arg) => !arg.startsWith("--job_id="))],
    ] as const)("%s: argparse exits 2", async ([, args], { trainer, expect }) => {
      const run = await trainer.run([...args]);
      expect(run.code).toBe(USAGE_ERROR);
      expect(run.stderr).toContain("usage:");
    });

    it.for([
      ["not JSON", "{oops"],
      ["a JSON array", "[1, 2]"],
      ["a JSON string", '"adam"'],
      ["smoke that is not an object", '{"smoke": 3}'],
      ["a negative epoch_seconds", '{"smoke": {"epoch_seconds": -1}}'],
      ["fail_at_epoch 0", '{"smoke": {"fail_at_epoch": 0}}'],
      ["an exit_code out of range", '{"smoke": {"exit_code": 300}}'],
    ] as const)("advanced_config %s: exits 3", async ([, advancedConfig], { trainer, expect }) => {
      const run = await trainer.run([...smokeArgs({ advancedConfig: undefined }), `--advanced_config=${advancedConfig}`]);
      expect(run.code).toBe(CONFIGURATION_ERROR);
      expect(run.stderr).toContain("configuration error:");
      expect(existsSync(join(trainer.checkpointDir, "last.pt"))).toBe(false);
    });

    it("an abbreviated flag is an unknown flag, not a silent --epochs: argparse exits 2", async ({ trainer, expect }) => {
      const run = await trainer.run([...smokeArgs(), "--epoch=5"]);
      expect(run.code).toBe(USAGE_ERROR);
      expect(run.stderr).toContain("unrecognized arguments: --epoch=5");
    });

    it("a checkpoint folder that cannot be created exits 3", async ({ trainer, expect }) => {
      await trainer.writeCheckpoint("a-file", {});
      const run = await trainer.run(smokeArgs(), { [TRAINER_ENV.checkpointDir]: join(trainer.checkpointDir, "a-file", "checkpoints") });
      expect(run.code).toBe(CONFIGURATION_ERROR);
      expect(run.stderr).toContain("cannot create the checkpoint folder");
    });

    it("a local RESUME_FROM that does not exist exits 3", async ({ trainer, expect }) => {
      const run = await trainer.run(smokeArgs(), { [TRAINER_ENV.resumeFrom]: join(trainer.checkpointDir, "missing.pt") });
      expect(run.code).toBe(CONFIGURATION_ERROR);
      expect(run.stderr).toContain("is not a file");
    });
  });

  describe("resume", () => {
    it("continues after the epoch of its own last.pt", async ({ trainer, expect }) => {
      await trainer.writeCheckpoint("last.pt", { epoch: 2 });
      const run = await trainer.run(smokeArgs({ epochs: 4 }));
      expect(run.code).toBe(0);
      expect(run.stdout).toContain("starting at epoch 3");
      expect(epochsPrinted(run.stdout)).toEqual([3, 4]);
      expect((await trainer.lastCheckpoint()).epoch).toBe(4);
    });

    it("continues from a RESUME_FROM file when it is newer than last.pt", async ({ trainer, expect }) => {
      const resumeFrom = join(trainer.checkpointDir, "from-another-run.pt");
      await trainer.writeCheckpoint("from-another-run.pt", { epoch: 3 });
      await trainer.writeCheckpoint("last.pt", { epoch: 1 });
      const run = await trainer.run(smokeArgs({ epochs: 5 }), { [TRAINER_ENV.resumeFrom]: resumeFrom });
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`resuming from ${resumeFrom} (epoch 3)`);
      expect(epochsPrinted(run.stdout)).toEqual([4, 5]);
    });

    it("says so and starts fresh when RESUME_FROM is an object-store URI", async ({ trainer, expect }) => {
      const run = await trainer.run(smokeArgs({ epochs: 2 }), { [TRAINER_ENV.resumeFrom]: "r2://bucket/checkpoints/last.pt" });
      expect(run.code).toBe(0);
      expect(run.stdout).toContain("is not a local file");
      expect(epochsPrinted(run.stdout)).toEqual([1, 2]);
    });

    it("has nothing to do when the checkpoint already covers every epoch", async ({ trainer, expect }) => {
      await trainer.writeCheckpoint("last.pt", { epoch: 3 });
      const run = await trainer.run(smokeArgs({ epochs: 3 }));
      expect(run.code).toBe(0);
      expect(epochsPrinted(run.stdout)).toEqual([]);
    });
  });

  it("SIGTERM writes a checkpoint of the last finished epoch and exits 143", async ({ trainer, expect }) => {
    const { child, finished } = trainer.start(smokeArgs({ epochs: 1000, advancedConfig: { smoke: { epoch_seconds: 0.2 } } }));
    // Signal once the first epoch's line has arrived whole (it may come in more than one chunk).
    let seen = "";
    child.stdout.on("data", function signalAfterFirstEpoch(chunk: string) {
      seen += chunk;
      if (!/^epoch 1\/.*\n/m.test(seen)) return;
      child.stdout.off("data", signalAfterFirstEpoch);
      child.kill("SIGTERM");
    });
    const run = await finished;
    expect(run.signal).toBeNull(); // the trainer handled the signal and exited by itself
    expect(run.code).toBe(143);
    expect(run.stdout).toContain("SIGTERM: checkpoint at epoch");
    const lastPrinted = epochsPrinted(run.stdout).at(-1);
    expect(lastPrinted).toBeLessThan(1000);
    expect((await trainer.lastCheckpoint()).epoch).toBe(lastPrinted);
  });

  describe("backend reporting", () => {
    it("posts running, metrics for every epoch, logs, then completed", async ({ trainer, backend, expect }) => {
      const run = await trainer.run(smokeArgs({ epochs: 3 }), { [TRAINER_ENV.backendUrl]: `${backend.url}/` });
      expect(run.code).toBe(0);
      expect(run.stderr).toBe("");
      const { received, jobPath, bodiesAt } = backend;
      expect(received.every(({ method, contentType }) => method === "POST" && contentType === "application/json")).toBe(true);
      expect(received.every(({ path }) => [jobPath("status"), jobPath("metrics"), jobPath("logs")].includes(path))).toBe(true);
      expect(bodiesAt("status")).toEqual([{ status: "running" }, { status: "completed" }]);
      expect(bodiesAt("metrics")).toEqual(
        [1, 2, 3].map((epoch) => ({ epoch, metrics: { loss: expect.any(Number), accuracy: expect.any(Number) } })),
      );
      expect(bodiesAt("logs")).toContainEqual({ message: expect.stringContaining("training completed"), level: "INFO" });
      // Across endpoints too: running before anything else, completed after everything else.
      expect(received[0]?.body).toEqual({ status: "running" });
      expect(received.at(-1)?.body).toEqual({ status: "completed" });
    });

    it("posts failed when the run fails", async ({ trainer, backend, expect }) => {
      const advancedConfig = { smoke: { epoch_seconds: 0, fail_at_epoch: 2 } };
      const run = await trainer.run(smokeArgs({ advancedConfig }), { [TRAINER_ENV.backendUrl]: backend.url });
      expect(run.code).toBe(1);
      expect(backend.bodiesAt("status")).toEqual([{ status: "running" }, { status: "failed" }]);
      expect(backend.bodiesAt("metrics").map((body) => body.epoch)).toEqual([1]);
      expect(backend.bodiesAt("logs")).toContainEqual({ message: expect.stringContaining("failing at epoch 2"), level: "ERROR" });
    });

    it("a backend that is down is logged to stderr and does not stop training", async ({ trainer, backend, expect }) => {
      await backend.stop();
      const run = await trainer.run(smokeArgs({ epochs: 2 }), { [TRAINER_ENV.backendUrl]: backend.url });
      expect(run.code).toBe(0);
      expect(epochsPrinted(run.stdout)).toEqual([1, 2]);
      expect(run.stderr).toContain(`backend: POST ${backend.url}${backend.jobPath("status")} failed`);
    });
  });

  /** A folder with an `nvidia-smi` that prints `output` and exits with `exitCode`, for PATH. */
  async function fakeNvidiaSmi(dir: string, output: string, exitCode: number): Promise<string> {
    const bin = join(dir, "bin");
    await mkdir(bin);
    await writeFile(join(bin, "nvidia-smi"), `#!/bin/sh\necho '${output}'\nexit ${exitCode}\n`, { mode: 0o755 });
    return `${bin}:${process.env.PATH}`;
  }

  it("SMOKE_REQUIRE_GPU=1 with a GPU listed reports it, checks a matrix multiply, then trains", async ({ trainer, expect }) => {
    const path = await fakeNvidiaSmi(trainer.checkpointDir, "GPU 0: Tesla T4 (UUID: GPU-0123)", 0);
    const run = await trainer.run(smokeArgs({ epochs: 2 }), { PATH: path, SMOKE_REQUIRE_GPU: "1" });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("gpu: GPU 0: Tesla T4 (UUID: GPU-0123)");
    expect(run.stdout).toMatch(/gpu: .*matrix multiply/);
    expect(epochsPrinted(run.stdout)).toEqual([1, 2]);
  });

  it.skipIf(existsSync("/proc/driver/nvidia/gpus"))("SMOKE_REQUIRE_GPU=1 when nvidia-smi fails exits 1", async ({ trainer, expect }) => {
    const path = await fakeNvidiaSmi(trainer.checkpointDir, "NVIDIA-SMI has failed", 9);
    const run = await trainer.run(smokeArgs(), { PATH: path, SMOKE_REQUIRE_GPU: "1" });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("nvidia-smi -L failed");
    expect(run.stderr).toContain("no GPU visible");
  });

  const gpuVisible =
    existsSync("/proc/driver/nvidia/gpus") || (process.env.PATH ?? "").split(":").some((dir) => existsSync(join(dir, "nvidia-smi")));

  it.skipIf(gpuVisible)("SMOKE_REQUIRE_GPU=1 without a GPU exits 1 before training and says why", async ({ trainer, expect }) => {
    const run = await trainer.run(smokeArgs(), { SMOKE_REQUIRE_GPU: "1" });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("no GPU visible");
    expect(run.stderr).toContain("nvidia.com/gpu");
    expect(epochsPrinted(run.stdout)).toEqual([]);
  });
});
