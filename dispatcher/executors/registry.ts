/**
 * The one place that knows which executor holds a job. Every route asks it, never an
 * executor directly, so the rules hold everywhere:
 * - a jobId lives on exactly one executor: creating it on another is a 409 naming the holder;
 * - an executor that cannot answer never hides another's jobs: lookups ask all executors at
 *   once and a job found anywhere is served; only "not found anywhere" waits on the one that failed;
 * - a list across executors says which executor could not answer instead of failing whole.
 */
import type { Executor, TrainingRequest } from "../../charts-ts/request.ts";
import { ApiError, apiServerMessage, notFound } from "../api-error.ts";
import type { JobStatus } from "../status/status-model.ts";
import type { DryRunResult, JobExecutor, ListFilter, LogRequest, LogResult, Readiness, SubmitResult } from "./job-executor.ts";

export interface UnavailableExecutor {
  readonly executor: Executor;
  readonly message: string;
}

export interface RegistryPage {
  readonly jobs: readonly JobStatus[];
  /** `<executor>:<that executor's token>`, so one listing walks every executor in turn. */
  readonly nextPageToken?: string;
  /** Executors that could not answer: their jobs are missing from this page. */
  readonly unavailableExecutors?: readonly UnavailableExecutor[];
}

export interface RegistryListFilter extends Omit<ListFilter, "pageToken"> {
  readonly executor?: Executor;
  readonly pageToken?: string;
}

export type FoundLogs = Exclude<LogResult, { readonly kind: "unknown-job" }>;

export class ExecutorRegistry {
  readonly defaultExecutor: Executor;
  private readonly executors: readonly JobExecutor[];
  /** Creations in flight per jobId: the check "no other executor holds it" and the create are one step. */
  private readonly creating = new Map<number, Promise<unknown>>();

  constructor(executors: readonly JobExecutor[], defaultExecutor: Executor) {
    this.executors = executors;
    this.defaultExecutor = defaultExecutor;
  }

  /** The configured executor of this kind; a 400 naming `field` when there is none. */
  executor(kind: Executor, field: string): JobExecutor {
    const executor = this.executors.find((candidate) => candidate.kind === kind);
    if (!executor) throw new ApiError(400, "invalid_request", `the ${kind} executor is not configured on this dispatcher`, field);
    return executor;
  }

  /** The executor holding the job and its status; 404 when none does, the failure when one that might could not answer. */
  async find(jobId: number): Promise<{ readonly executor: JobExecutor; readonly status: JobStatus }> {
    const answers = await Promise.allSettled(this.executors.map((executor) => executor.get(jobId)));
    let failure: unknown;
    for (const [index, answer] of answers.entries()) {
      if (answer.status === "fulfilled" && answer.value) return { executor: this.executors[index] as JobExecutor, status: answer.value };
      if (answer.status === "rejected") failure ??= answer.reason;
    }
    if (failure !== undefined) throw failure;
    throw notFound(jobId);
  }

  async submit(request: TrainingRequest): Promise<SubmitResult> {
    const target = this.executor(request.executor ?? this.defaultExecutor, "executor");
    return this.exclusive(request.jobId, async () => {
      const others = this.executors.filter((executor) => executor !== target);
      const held = await Promise.allSettled(others.map((executor) => executor.get(request.jobId)));
      for (const [index, answer] of held.entries()) {
        const other = others[index] as JobExecutor;
        if (answer.status === "rejected") {
          const reason = answer.reason;
          if (!(reason instanceof ApiError)) throw reason;
          throw new ApiError(
            reason.statusCode,
            reason.code,
            `cannot tell whether the ${other.kind} executor already holds job ${request.jobId}, so it is not created: ${reason.message}`,
          );
        }
        if (answer.value) {
          throw new ApiError(
            409,
            "conflict",
            `job ${request.jobId} already exists on the ${other.kind} executor; a jobId lives on one executor`,
            "executor",
          );
        }
      }
      return target.submit(request);
    });
  }

  async dryRun(request: TrainingRequest): Promise<DryRunResult> {
    const executor = this.executors.find((candidate) => candidate.dryRun !== undefined);
    if (!executor?.dryRun)
      throw new ApiError(400, "invalid_request", "a dry run needs the kubernetes executor, which is not configured", "dryRun");
    return executor.dryRun(request);
  }

  async stop(jobId: number): Promise<JobStatus> {
    const { executor } = await this.find(jobId);
    const status = await executor.stop(jobId);
    if (!status) throw notFound(jobId);
    return status;
  }

  async logs(jobId: number, request: LogRequest): Promise<FoundLogs> {
    const { executor } = await this.find(jobId);
    const result = await executor.logs(jobId, request);
    if (result.kind === "unknown-job") throw notFound(jobId);
    return result;
  }

  async list(filter: RegistryListFilter): Promise<RegistryPage> {
    const { executor: only, pageToken, ...rest } = filter;
    const [tokenExecutor, token] = pageToken === undefined ? [undefined, undefined] : (pageToken.split(/:(.*)/s) as [string, string?]);
    const candidates = this.executors.filter((executor) => only === undefined || executor.kind === only);
    const startAt = tokenExecutor === undefined ? 0 : candidates.findIndex((executor) => executor.kind === tokenExecutor);
    if (startAt < 0 || (pageToken !== undefined && token === undefined)) {
      throw new ApiError(400, "invalid_request", "pageToken is not one this dispatcher issued", "pageToken");
    }
    const jobs: JobStatus[] = [];
    const unavailable: UnavailableExecutor[] = [];
    const page = (nextPageToken?: string): RegistryPage => ({
      jobs,
      ...(nextPageToken !== undefined && { nextPageToken }),
      ...(unavailable.length > 0 && { unavailableExecutors: unavailable }),
    });
    for (let index = startAt; index < candidates.length; index += 1) {
      const executor = candidates[index] as JobExecutor;
      try {
        const part = await executor.list({
          ...rest,
          limit: filter.limit - jobs.length,
          ...(index === startAt && token && { pageToken: token }),
        });
        jobs.push(...part.jobs);
        if (part.nextPageToken !== undefined) return page(`${executor.kind}:${part.nextPageToken}`);
      } catch (error) {
        // A refused page token is the caller's mistake, not the executor's absence.
        if (error instanceof ApiError && error.statusCode < 500) throw error;
        unavailable.push({ executor: executor.kind, message: error instanceof ApiError ? error.message : apiServerMessage(error) });
      }
      const following = candidates[index + 1];
      if (jobs.length >= filter.limit && following) return page(`${following.kind}:`);
    }
    return page();
  }

  /** Each executor's readiness, asked at once. */
  async readiness(): Promise<Partial<Record<Executor, Readiness>>> {
    const states = await Promise.all(this.executors.map(async (executor) => [executor.kind, await executor.ready()] as const));
    return Object.fromEntries(states);
  }

  private async exclusive<T>(jobId: number, work: () => Promise<T>): Promise<T> {
    const before = this.creating.get(jobId);
    const mine = (before ?? Promise.resolve()).catch(() => undefined).then(work);
    this.creating.set(jobId, mine);
    try {
      return await mine;
    } finally {
      if (this.creating.get(jobId) === mine) this.creating.delete(jobId);
    }
  }
}
