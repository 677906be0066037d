/**
 * Pushes every status transition to the backend's TrainingLogger endpoints
 * (`POST {BACKEND_API_URL}/api/v1/internal/training/jobs/{jobId}/status`, and a line for the
 * job's log view to `.../logs`, where the trainer's own log_message lines go), in order
 * per job and at least once. What the backend acknowledged is recorded on the Job itself
 * (delivery-record.ts: the count and the last transition), so a restarted dispatcher
 * resumes after the last one the backend confirmed: nothing lost, nothing delivered
 * twice except the one transition in flight when a dispatcher dies (at-least-once). While the backend fails, each job's
 * queue waits with capped, jittered exponential backoff.
 */
import { BatchV1Api, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Job } from "@kubernetes/client-node";
import { ANNOTATION } from "../../charts-ts/labels.ts";
import type { Transition } from "../status/status-model.ts";
import { type DeliveryRecord, deliveryRecord, parseDeliveryRecord, resumeIndex } from "./delivery-record.ts";
import { backoffDelay, type JobUpdate, jobKeyOf } from "./job-watch.ts";

/** Header carrying the shared token on calls to the backend. */
export const BACKEND_TOKEN_HEADER = "x-internal-token";

export interface StatusCallback {
  /** The plan's TrainingLogger status value. */
  readonly status: Transition["phase"];
  readonly reason: string;
  readonly message?: string;
  readonly attempt?: number;
  readonly exitCode?: number;
  /** When the transition happened (RFC 3339). */
  readonly at: string;
  /**
   * 1, 2, 3, ... per job, one number per transition delivered: the backend may deduplicate on
   * (jobId, sequence). It is the transition's position in the job's history unless that history
   * was rewritten (pods gone without the dispatcher recording them); then it just goes on counting.
   */
  readonly sequence: number;
}

/** The plan's log_message body: a transition as a line of the job's log, marked as the dispatcher's. */
export interface LogCallback {
  readonly message: string;
  readonly level: "INFO" | "WARNING" | "ERROR";
}

export function logCallbackOf(transition: Transition): LogCallback {
  const level = transition.phase === "failed" ? "ERROR" : transition.phase === "retrying" ? "WARNING" : "INFO";
  const attempt = transition.attempt !== undefined ? ` (attempt ${transition.attempt})` : "";
  const detail = transition.message !== undefined ? `: ${transition.message}` : "";
  return { level, message: `dispatcher: ${transition.phase}${attempt}, ${transition.reason}${detail}` };
}

export interface DeliveryObserver {
  delivered?(jobId: number, transition: Transition, lagSeconds: number): void;
  failed?(jobId: number, error: string): void;
}

export interface BackendCallbacksProps {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly backendUrl: string;
  readonly backendToken?: string;
  /** @default 200 */
  readonly minRetryDelayMs?: number;
  /** @default 30_000 */
  readonly maxRetryDelayMs?: number;
  /** Per call. @default 10_000 */
  readonly timeoutMs?: number;
  readonly observer?: DeliveryObserver;
  /** Deliver from the start; false waits for setActive(true). @default true */
  readonly active?: boolean;
  /** Calls in flight at once across all jobs (each job's own calls stay one at a time). @default 16 */
  readonly maxConcurrentCalls?: number;
}

interface JobQueue {
  readonly jobId: number;
  readonly name: string;
  /** The last transition acknowledged and recorded on the Job, and its sequence number. */
  record: DeliveryRecord | undefined;
  /** How many of `latest` that record covers: the next to deliver is latest[delivered]. */
  delivered: number;
  /** The highest sequence the backend acknowledged, recorded or not: a failed record is retried without re-posting. */
  acknowledged: number;
  /** The same for the transition's log line, its second call. */
  logged: number;
  latest: readonly Transition[];
  running: boolean;
}

export class BackendCallbacks {
  private readonly props: BackendCallbacksProps & {
    minRetryDelayMs: number;
    maxRetryDelayMs: number;
    timeoutMs: number;
    maxConcurrentCalls: number;
  };
  private readonly batch: BatchV1Api;
  private readonly queues = new Map<string, JobQueue>();
  private closed = false;
  /** Free call slots, and the drains waiting for one: 10,000 jobs changing at once must not mean 10,000 sockets. */
  private freeSlots = 0;
  private readonly waitingForSlot: (() => void)[] = [];
  /** Whether this replica delivers (it holds the lease); others keep their queues current and wait. */
  private active: boolean;

  constructor(props: BackendCallbacksProps) {
    this.props = { minRetryDelayMs: 200, maxRetryDelayMs: 30_000, timeoutMs: 10_000, maxConcurrentCalls: 16, ...props };
    this.batch = props.kubeConfig.makeApiClient(BatchV1Api);
    this.active = props.active ?? true;
    this.freeSlots = this.props.maxConcurrentCalls;
  }

  private async slot(): Promise<() => void> {
    if (this.freeSlots > 0) this.freeSlots -= 1;
    else await new Promise<void>((resolve) => this.waitingForSlot.push(resolve));
    return () => {
      const next = this.waitingForSlot.shift();
      if (next) next();
      else this.freeSlots += 1;
    };
  }

  /** Starts or pauses delivery; a new leader continues from what the Jobs record as delivered. */
  setActive(active: boolean): void {
    this.active = active;
    if (!active) return;
    for (const queue of this.queues.values()) {
      if (!queue.running && queue.delivered < queue.latest.length) void this.drain(queue);
    }
  }

  /** Feed from JobWatch: the latest derivation of a job. */
  update({ job, status }: JobUpdate): void {
    if (this.closed) return;
    const name = job.metadata?.name ?? status.name;
    // Keyed by uid: a Job created again under a deleted one's name starts from its own record.
    const key = jobKeyOf(job);
    const queue = this.queues.get(key) ?? {
      jobId: status.jobId,
      name,
      record: undefined,
      delivered: 0,
      acknowledged: 0,
      logged: 0,
      latest: [],
      running: false,
    };
    // The annotation is the durable record; never go back below what this process already recorded.
    const recorded = parseDeliveryRecord(job.metadata?.annotations?.[ANNOTATION.deliveredTransitions]);
    if (recorded && recorded.count > (queue.record?.count ?? 0)) queue.record = recorded;
    queue.acknowledged = Math.max(queue.acknowledged, queue.record?.count ?? 0);
    queue.logged = Math.max(queue.logged, queue.record?.count ?? 0);
    queue.latest = status.transitions;
    queue.delivered = resumeIndex(queue.record, queue.latest);
    this.queues.set(key, queue);
    if (this.active && !queue.running && queue.delivered < queue.latest.length) void this.drain(queue);
  }

  /**
   * Drops a deleted Job's queue. A delivery under way finishes what was derived: those
   * transitions happened, and the backend still wants to hear of them.
   */
  forget(job: V1Job): void {
    this.queues.delete(jobKeyOf(job));
  }

  /** Jobs tracked: what the queues hold on to. */
  tracked(): number {
    return this.queues.size;
  }

  /** Jobs with transitions not yet acknowledged. */
  pending(): number {
    return [...this.queues.values()].filter((queue) => queue.delivered < queue.latest.length).length;
  }

  close(): void {
    this.closed = true;
  }

  private async drain(queue: JobQueue): Promise<void> {
    queue.running = true;
    let failures = 0;
    try {
      while (!this.closed && this.active && queue.delivered < queue.latest.length) {
        const transition = queue.latest[queue.delivered] as Transition;
        // Sequences only grow: after a history rewrite the backend never sees one number twice for two transitions.
        const sent = deliveryRecord((queue.record?.count ?? 0) + 1, transition);
        try {
          const release = await this.slot();
          try {
            if (queue.acknowledged < sent.count) {
              await this.post(queue.jobId, "status", statusCallbackOf(transition, sent.count), sent.count);
              queue.acknowledged = sent.count;
            }
            if (queue.logged < sent.count) {
              await this.post(queue.jobId, "logs", logCallbackOf(transition), sent.count);
              queue.logged = sent.count;
            }
            await this.record(queue.name, sent);
          } finally {
            release();
          }
          queue.record = sent;
          // Found again in whatever history arrived meanwhile.
          queue.delivered = resumeIndex(sent, queue.latest);
          failures = 0;
          this.props.observer?.delivered?.(queue.jobId, transition, (Date.now() - Date.parse(transition.at)) / 1000);
        } catch (error) {
          this.props.observer?.failed?.(queue.jobId, error instanceof Error ? error.message : String(error));
          const delay = backoffDelay(failures, this.props.minRetryDelayMs, this.props.maxRetryDelayMs);
          failures += 1;
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    } finally {
      queue.running = false;
    }
  }

  private async post(jobId: number, endpoint: "status" | "logs", body: StatusCallback | LogCallback, sequence: number): Promise<void> {
    const url = new URL(`api/v1/internal/training/jobs/${jobId}/${endpoint}`, withTrailingSlash(this.props.backendUrl));
    const response = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(this.props.backendToken !== undefined && { [BACKEND_TOKEN_HEADER]: this.props.backendToken }),
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.props.timeoutMs),
    });
    await response.body?.cancel();
    if (!response.ok) throw new Error(`backend answered ${response.status} to ${endpoint} for job ${jobId} transition ${sequence}`);
  }

  private async record(name: string, delivered: DeliveryRecord): Promise<void> {
    const patch = { metadata: { annotations: { [ANNOTATION.deliveredTransitions]: JSON.stringify(delivered) } } };
    try {
      await this.batch.patchNamespacedJob(
        { name, namespace: this.props.namespace, body: patch },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    } catch (error) {
      // A Job deleted meanwhile has nobody left to resume for; anything else is retried.
      if ((error as { code?: number }).code !== 404) throw error;
    }
  }
}

function statusCallbackOf(transition: Transition, sequence: number): StatusCallback {
  return {
    status: transition.phase,
    reason: transition.reason,
    ...(transition.message !== undefined && { message: transition.message }),
    ...(transition.attempt !== undefined && { attempt: transition.attempt }),
    ...(transition.exitCode !== undefined && { exitCode: transition.exitCode }),
    at: transition.at,
    sequence,
  };
}

function withTrailingSlash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}
