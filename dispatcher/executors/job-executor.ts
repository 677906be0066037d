/** What the HTTP routes need from a place that runs training jobs: Kubernetes or a local subprocess. */
import type { Readable } from "node:stream";
import type { Executor, TrainingRequest } from "../../charts-ts/request.ts";
import type { Manifest } from "../../charts-ts/training-job-chart.ts";
import type { JobStatus, Phase } from "../status/status-model.ts";

export interface SubmitResult {
  /** False when an identical request had already created the job. */
  readonly created: boolean;
  readonly status: JobStatus;
}

export interface ListFilter {
  readonly projectId?: number;
  readonly framework?: string;
  readonly phase?: Phase;
  readonly limit: number;
  readonly pageToken?: string;
}

export interface JobPage {
  readonly jobs: readonly JobStatus[];
  readonly nextPageToken?: string;
}

export interface LogRequest {
  readonly tailLines?: number;
  /** 1-based attempt; the latest when absent. */
  readonly attempt?: number;
  readonly follow: boolean;
}

export type LogResult =
  | { readonly kind: "unknown-job" }
  | { readonly kind: "no-output-yet"; readonly status: JobStatus }
  | { readonly kind: "no-such-attempt"; readonly attempts: number }
  /** The attempt happened, its pod is gone (stopped, failed fast, removed): no output to read, its exit code when known. */
  | { readonly kind: "pods-gone"; readonly attempt: number; readonly exitCode?: number; readonly status: JobStatus }
  | { readonly kind: "output"; readonly attempt: number; readonly stream: Readable };

export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string };

export interface DryRunVerdict {
  readonly accepted: boolean;
  /** The API server's own words when it refuses. */
  readonly message?: string;
  readonly statusCode?: number;
}

export interface DryRunResult {
  readonly manifest: Manifest;
  readonly verdict: DryRunVerdict;
}

export interface JobExecutor {
  readonly kind: Executor;
  /** Creates the job; an identical existing job is returned as is; a different one throws a 409 ApiError. */
  submit(request: TrainingRequest): Promise<SubmitResult>;
  get(jobId: number): Promise<JobStatus | undefined>;
  list(filter: ListFilter): Promise<JobPage>;
  logs(jobId: number, request: LogRequest): Promise<LogResult>;
  /** Stops gracefully; undefined when there is no such job. */
  stop(jobId: number): Promise<JobStatus | undefined>;
  /** Whether the executor can take work now; if not, why, in words that name the fix. */
  ready(): Promise<Readiness>;
  /** What the job would be and the platform's verdict on it, creating nothing; absent where there is no such check. */
  dryRun?(request: TrainingRequest): Promise<DryRunResult>;
}
