/**
 * The baseline: the migration plan's TrainingMonitor (section 2.3). Every
 * `intervalMs` it walks the active jobs of its "database" one by one, reads each
 * Job (read_namespaced_job_status), derives the plan's status (succeeded ->
 * completed, failed -> failed, active -> running, else pending) and notifies when
 * it changed; completed and failed jobs leave the active set.
 */
import { BatchV1Api, type KubeConfig, type V1Job } from "@kubernetes/client-node";
import { trainingJobName } from "../charts-ts/labels.ts";
import { errorMessage, sleep } from "./stats.ts";

export type PlanStatus = "pending" | "running" | "completed" | "failed";

/** The plan's get_job_status. */
export function planStatus(job: V1Job): PlanStatus {
  if (job.status?.succeeded) return "completed";
  if (job.status?.failed) return "failed";
  if (job.status?.active) return "running";
  return "pending";
}

export interface PollerNotification {
  readonly jobId: number;
  readonly status: PlanStatus;
  /** performance.now() of the notification. */
  readonly at: number;
}

export class TrainingMonitor {
  /** Reads done so far. */
  reads = 0;
  readErrors = 0;
  lastError: string | undefined;
  passes = 0;
  private readonly batch: BatchV1Api;
  private readonly namespace: string;
  private readonly intervalMs: number;
  private readonly db = new Map<number, PlanStatus>();
  private readonly notify: (notification: PollerNotification) => void;
  private readonly controller = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(kubeConfig: KubeConfig, namespace: string, intervalMs: number, notify: (notification: PollerNotification) => void) {
    this.batch = kubeConfig.makeApiClient(BatchV1Api);
    this.namespace = namespace;
    this.intervalMs = intervalMs;
    this.notify = notify;
  }

  /** The backend recorded a new job as pending (start_training). */
  add(jobId: number): void {
    this.db.set(jobId, "pending");
  }

  get active(): number {
    return [...this.db.values()].filter((status) => status === "pending" || status === "running").length;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const signal = this.controller.signal;
    while (!signal.aborted) {
      await this.checkActiveJobs(signal);
      this.passes += 1;
      try {
        await sleep(this.intervalMs, signal);
      } catch {
        return;
      }
    }
  }

  private async checkActiveJobs(signal: AbortSignal): Promise<void> {
    const active = [...this.db.entries()].filter(([, status]) => status === "pending" || status === "running");
    for (const [jobId, known] of active) {
      if (signal.aborted) return;
      let job: V1Job;
      try {
        this.reads += 1;
        job = await this.batch.readNamespacedJobStatus({ name: trainingJobName(jobId), namespace: this.namespace });
      } catch (error) {
        this.readErrors += 1;
        this.lastError = errorMessage(error);
        continue;
      }
      const status = planStatus(job);
      if (status !== known) {
        this.db.set(jobId, status);
        this.notify({ jobId, status, at: performance.now() });
      }
    }
  }
}
