/**
 * Runs training jobs as local subprocesses with the same command line and
 * environment a pod gets: the plan's rollback path, and the default when no
 * cluster is configured. Each job keeps a folder (request, transitions, log)
 * so its history survives a dispatcher restart; a run that was in flight when
 * the dispatcher went away is reported as failed (Lost), never as running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { appendFile, mkdir, open as openFile, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { canonicalJson } from "../../charts-ts/canonical-json.ts";
import { trainingJobName } from "../../charts-ts/labels.ts";
import { durationSeconds, type TrainingRequest } from "../../charts-ts/request.ts";
import {
  CONFIGURATION_ERROR_EXIT_CODES,
  TRAINER_COMMAND,
  TRAINER_ENV,
  TRAINER_FIXED_ENV,
  trainerArgs,
} from "../../charts-ts/trainer-contract.ts";
import { ApiError } from "../api-error.ts";
import { jsonLinesLog, type Log } from "../log.ts";
import { type JobStatus, type Phase, REASON, TERMINAL_PHASES, type Transition, transitionSchema } from "../status/status-model.ts";
import type { JobExecutor, JobPage, ListFilter, LogRequest, LogResult, Readiness, SubmitResult } from "./job-executor.ts";
import { assertSameRequest, requestConflicts } from "./request-diff.ts";

export interface LocalExecutorProps {
  /** Folder holding the trainer's train.py; the command runs there. */
  readonly trainerDir: string;
  /** Interpreter standing in for the image's `python`. */
  readonly python: string;
  /** Where each job's folder goes. */
  readonly workDir: string;
  /** Seconds between SIGTERM and SIGKILL on stop or deadline. */
  readonly graceSeconds: number;
  /** Values for the variables a pod gets from its Secret, ConfigMap and settings. */
  readonly environment: Readonly<Record<string, string | undefined>>;
  /**
   * Where start-up reports what it skipped in the work folder.
   * @default jsonLinesLog
   */
  readonly log?: Log;
}

const REQUEST_FILE = "request.json";
const TRANSITIONS_FILE = "transitions.jsonl";
const LOG_FILE = "attempt-1.log";
/** A job folder whose request.json cannot be read is renamed `<folder><this><ms>` and left for a person. */
const UNREADABLE_MARK = ".unreadable-";

interface LocalJob {
  readonly request: TrainingRequest;
  readonly dir: string;
  readonly transitions: Transition[];
  process?: ChildProcess;
  lastExitCode?: number;
  stopRequested?: boolean;
  deadlineHit?: boolean;
}

export class LocalExecutor implements JobExecutor {
  readonly kind = "local" as const;
  private readonly props: LocalExecutorProps;
  private readonly jobs = new Map<number, LocalJob>();
  private readonly log: Log;

  private constructor(props: LocalExecutorProps) {
    this.props = props;
    this.log = props.log ?? jsonLinesLog;
  }

  /** Opens the work folder and reloads every job recorded there. */
  static async open(props: LocalExecutorProps): Promise<LocalExecutor> {
    const executor = new LocalExecutor(props);
    await mkdir(props.workDir, { recursive: true });
    for (const entry of await readdir(props.workDir)) {
      if (!entry.includes(UNREADABLE_MARK)) await executor.reload(join(props.workDir, entry));
    }
    return executor;
  }

  // A crash can leave a job folder half-written; start-up skips what it cannot read, says so,
  // and never stops on it: the other jobs' history, and the dispatcher itself, matter more.
  private async reload(dir: string): Promise<void> {
    const requestFile = join(dir, REQUEST_FILE);
    if (!existsSync(requestFile)) return;
    const request = storedRequest(await readFile(requestFile, "utf8"));
    if (!request) {
      await this.setAside(dir, requestFile);
      return;
    }
    const job: LocalJob = { request, dir, transitions: await this.readTransitions(join(dir, TRANSITIONS_FILE)) };
    this.jobs.set(request.jobId, job);
    job.lastExitCode = job.transitions.findLast((transition) => transition.exitCode !== undefined)?.exitCode;
    const last = job.transitions.at(-1);
    if (!last || !TERMINAL_PHASES.has(last.phase)) {
      await this.record(job, "failed", REASON.lost, "the dispatcher restarted while this local run was in flight; its process is gone");
    }
  }

  /** Moves an unreadable job folder out of the way, so its jobId can be submitted again. */
  private async setAside(dir: string, file: string): Promise<void> {
    const movedTo = `${dir}${UNREADABLE_MARK}${Date.now()}`;
    const message = "unreadable request.json; skipping this job (a crash mid-write?)";
    try {
      await rename(dir, movedTo);
      this.log("error", `${message}, its folder moved aside`, { file, movedTo });
    } catch (error) {
      this.log("error", `${message}; its folder could not be moved aside`, { file, error: (error as Error).message });
    }
  }

  /**
   * The transitions that parse. Lines are appended, so a crash can tear the last one; it is
   * skipped, and the file rewritten without it, so the next append starts on a line of its own.
   */
  private async readTransitions(file: string): Promise<Transition[]> {
    if (!existsSync(file)) return [];
    const text = await readFile(file, "utf8");
    const transitions: Transition[] = [];
    let skipped = false;
    text.split("\n").forEach((line, index) => {
      if (line === "") return;
      const transition = parsedTransition(line);
      if (transition) transitions.push(transition);
      else {
        skipped = true;
        this.log("warn", "torn line in transitions.jsonl skipped (a crash mid-write)", { file, line: index + 1 });
      }
    });
    if (skipped || (text !== "" && !text.endsWith("\n"))) {
      await writeFileAtomic(file, transitions.map((transition) => `${JSON.stringify(transition)}\n`).join(""));
    }
    return transitions;
  }

  async submit(request: TrainingRequest): Promise<SubmitResult> {
    const existing = this.jobs.get(request.jobId);
    if (existing) {
      assertSameRequest(request.jobId, requestConflicts(canonicalJson(existing.request), request));
      return { created: false, status: this.statusOf(existing) };
    }
    const dir = join(this.props.workDir, trainingJobName(request.jobId));
    const job: LocalJob = { request, dir, transitions: [] };
    this.jobs.set(request.jobId, job);
    await mkdir(join(dir, "output", "checkpoints"), { recursive: true });
    await writeFileAtomic(join(dir, REQUEST_FILE), canonicalJson(request));
    await this.record(job, "pending", REASON.created);
    this.start(job);
    return { created: true, status: this.statusOf(job) };
  }

  private environment(job: LocalJob): Record<string, string> {
    const env: Record<string, string | undefined> = {
      PATH: process.env.PATH,
      ...this.props.environment,
      ...TRAINER_FIXED_ENV,
      HOME: job.dir,
      [TRAINER_ENV.checkpointDir]: join(job.dir, "output", "checkpoints"),
      ...(job.request.resumeFrom !== undefined && { [TRAINER_ENV.resumeFrom]: job.request.resumeFrom }),
    };
    return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
  }

  private start(job: LocalJob): void {
    const [, ...script] = TRAINER_COMMAND;
    const log = createWriteStream(join(job.dir, LOG_FILE), { flags: "a" });
    const child = spawn(this.props.python, [...script, ...trainerArgs(job.request, join(job.dir, "output"))], {
      cwd: this.props.trainerDir,
      env: this.environment(job),
      stdio: ["ignore", "pipe", "pipe"],
    });
    job.process = child;
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.once("spawn", () => void this.record(job, "running", REASON.started, "attempt 1 running", 1));
    child.once("error", (error) => {
      log.end();
      void this.record(job, "failed", REASON.error, `could not start the trainer: ${error.message}`, 1);
    });
    const deadline = setTimeout(
      () => {
        job.deadlineHit = true;
        this.terminate(child);
      },
      (durationSeconds(job.request.maxRuntime) ?? 0) * 1000,
    );
    child.once("close", (code, signal) => {
      clearTimeout(deadline);
      log.end();
      job.process = undefined;
      if (code !== null) job.lastExitCode = code;
      const [phase, reason, message] = outcome(job, code, signal);
      void this.record(job, phase, reason, message, 1, code ?? undefined);
    });
  }

  private terminate(child: ChildProcess): void {
    child.kill("SIGTERM");
    const kill = setTimeout(() => child.kill("SIGKILL"), this.props.graceSeconds * 1000);
    child.once("close", () => clearTimeout(kill));
  }

  private async record(job: LocalJob, phase: Phase, reason: string, message?: string, attempt?: number, exitCode?: number): Promise<void> {
    if (job.transitions.at(-1)?.phase === phase) return;
    const transition: Transition = {
      phase,
      reason,
      ...(message !== undefined && { message }),
      ...(attempt !== undefined && { attempt }),
      ...(exitCode !== undefined && { exitCode }),
      at: new Date().toISOString(),
    };
    job.transitions.push(transition);
    await appendFile(join(job.dir, TRANSITIONS_FILE), `${JSON.stringify(transition)}\n`);
  }

  async get(jobId: number): Promise<JobStatus | undefined> {
    const job = this.jobs.get(jobId);
    return job && this.statusOf(job);
  }

  async list(filter: ListFilter): Promise<JobPage> {
    const matching = [...this.jobs.values()]
      .filter((job) => filter.projectId === undefined || job.request.projectId === filter.projectId)
      .filter((job) => filter.framework === undefined || job.request.framework === filter.framework)
      .map((job) => this.statusOf(job))
      .filter((status) => filter.phase === undefined || status.phase === filter.phase)
      .sort((a, b) => a.jobId - b.jobId);
    const start = filter.pageToken === undefined ? 0 : matching.findIndex((status) => status.jobId > Number(filter.pageToken));
    const page = start < 0 ? [] : matching.slice(start, start + filter.limit);
    const last = page.at(-1);
    return { jobs: page, ...(last && start + filter.limit < matching.length ? { nextPageToken: String(last.jobId) } : {}) };
  }

  async stop(jobId: number): Promise<JobStatus | undefined> {
    const job = this.jobs.get(jobId);
    if (!job) return undefined;
    const status = this.statusOf(job);
    if (status.phase === "stopped") return status;
    if (TERMINAL_PHASES.has(status.phase))
      throw new ApiError(409, "conflict", `job ${jobId} has already ${status.phase}; there is nothing to stop`);
    job.stopRequested = true;
    if (job.process) this.terminate(job.process);
    await this.record(job, "stopped", REASON.stoppedByUser, "stop requested; the trainer got SIGTERM to checkpoint and exit");
    return this.statusOf(job);
  }

  async logs(jobId: number, request: LogRequest): Promise<LogResult> {
    const job = this.jobs.get(jobId);
    if (!job) return { kind: "unknown-job" };
    if (request.attempt !== undefined && request.attempt !== 1) return { kind: "no-such-attempt", attempts: 1 };
    const path = join(job.dir, LOG_FILE);
    if (!existsSync(path) || (await stat(path)).size === 0) {
      if (!request.follow || TERMINAL_PHASES.has(this.statusOf(job).phase)) return { kind: "no-output-yet", status: this.statusOf(job) };
    }
    return {
      kind: "output",
      attempt: 1,
      stream: request.follow ? this.follow(job, path, request.tailLines) : await tail(path, request.tailLines),
    };
  }

  /** Streams the log from the last N lines on, until the run ends. */
  private follow(job: LocalJob, path: string, tailLines: number | undefined): Readable {
    const out = new PassThrough();
    let offset = 0;
    const pump = async () => {
      const size = existsSync(path) ? (await stat(path)).size : 0;
      if (size > offset) {
        // pipeline closes the file when the reader hangs up mid-chunk, where pipe() would leave it open forever.
        await pipeline(createReadStream(path, { start: offset, end: size - 1 }), out, { end: false }).catch(() => undefined);
        offset = size;
      }
    };
    void (async () => {
      if (existsSync(path)) {
        const initial = await readFile(path, "utf8");
        out.write(lastLines(initial, tailLines));
        offset = Buffer.byteLength(initial);
      }
      while (!out.destroyed && (job.process || !TERMINAL_PHASES.has(this.statusOf(job).phase))) {
        await pump();
        await new Promise((resolveWait) => setTimeout(resolveWait, 200));
      }
      await pump();
      out.end();
    })();
    return out;
  }

  async ready(): Promise<Readiness> {
    return { ready: true };
  }

  private statusOf(job: LocalJob): JobStatus {
    const current = job.transitions.at(-1);
    const started = job.transitions.find((t) => t.phase === "running");
    const ended = current && TERMINAL_PHASES.has(current.phase) ? current : undefined;
    return {
      jobId: job.request.jobId,
      executor: "local",
      name: trainingJobName(job.request.jobId),
      phase: current?.phase ?? "pending",
      reason: current?.reason ?? REASON.created,
      ...(current?.message !== undefined && { message: current.message }),
      attempts: started ? 1 : 0,
      ...(job.lastExitCode !== undefined && { lastExitCode: job.lastExitCode }),
      ...(started && { startTime: started.at }),
      ...(ended && { completionTime: ended.at }),
      transitions: [...job.transitions],
    };
  }
}

/** How a finished trainer process maps onto the status model. */
function outcome(job: LocalJob, code: number | null, signal: NodeJS.Signals | null): [Phase, string, string] {
  if (job.stopRequested) return ["stopped", REASON.stoppedByUser, "stopped on request"];
  if (job.deadlineHit) return ["failed", REASON.deadlineExceeded, `ran longer than maxRuntime ${job.request.maxRuntime}`];
  if (code === 0) return ["completed", REASON.succeeded, "the trainer exited with code 0"];
  if (code !== null && CONFIGURATION_ERROR_EXIT_CODES.includes(code)) {
    return ["failed", REASON.configurationError, `trainer exited with code ${code}, a configuration error`];
  }
  return ["failed", REASON.error, code !== null ? `trainer exited with code ${code}` : `trainer was killed by ${signal}`];
}

/** A stored request.json: written by submit from a validated request, so only its completeness is in doubt. */
function storedRequest(text: string): TrainingRequest | undefined {
  try {
    const request = JSON.parse(text) as Partial<TrainingRequest> | null;
    return Number.isSafeInteger(request?.jobId) ? (request as TrainingRequest) : undefined;
  } catch {
    return undefined;
  }
}

function parsedTransition(line: string): Transition | undefined {
  try {
    return transitionSchema.parse(JSON.parse(line));
  } catch {
    return undefined;
  }
}

/**
 * Write-then-rename: whoever reads the file, the next start after a crash included, sees the
 * old content or the new, never a part. The data is synced before the rename makes it visible.
 */
async function writeFileAtomic(path: string, data: string): Promise<void> {
  const temporary = `${path}.${randomUUID()}.tmp`;
  try {
    const handle = await openFile(temporary, "w");
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

function lastLines(text: string, count: number | undefined): string {
  if (count === undefined) return text;
  const lines = text.split("\n");
  const trailing = lines.at(-1) === "" ? lines.pop() : undefined;
  return lines.slice(-count).join("\n") + (trailing === undefined ? "" : "\n");
}

async function tail(path: string, count: number | undefined): Promise<Readable> {
  const out = new PassThrough();
  out.end(existsSync(path) ? lastLines(await readFile(path, "utf8"), count) : "");
  return out;
}
