/**
 * Pushes every event of the status stream (status-stream.ts) to the backend's TrainingLogger
 * endpoints (`POST {BACKEND_API_URL}/api/v1/internal/training/jobs/{jobId}/status`, and a line
 * for the job's log view to `.../logs`, where the trainer's own log_message lines go), in order
 * per job and at least once, with the stream's sequence numbers (the SSE ids). What the backend
 * acknowledged is recorded on the Job itself (delivery-record.ts: the number and the event), so
 * a restarted dispatcher resumes after the last one the backend confirmed: nothing lost, nothing
 * delivered twice except the one event in flight when a dispatcher dies (at-least-once). While
 * the backend fails, each job's queue waits with capped, jittered exponential backoff.
 */
import { BatchV1Api, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Job } from "@kubernetes/client-node";
import { ANNOTATION, LABEL } from "../../charts-ts/labels.ts";
import type { Queue, Transition } from "../status/status-model.ts";
import { deliveryRecord, parseDeliveryRecord } from "./delivery-record.ts";
import { backoffDelay, jobKeyOf } from "./job-watch.ts";
import type { StreamEvent } from "./status-stream.ts";

/** Header carrying the shared token on calls to the backend. */
export const BACKEND_TOKEN_HEADER = "x-internal-token";

export interface StatusCallback {
  /** The plan's TrainingLogger status value. */
  readonly status: Transition["phase"];
  readonly reason: string;
  readonly message?: string;
  readonly attempt?: number;
  readonly exitCode?: number;
  /** While queued by Kueue: the LocalQueue, the 1-based position in it and the flavor waited for. */
  readonly queue?: Queue;
  /** When the transition happened (RFC 3339). */
  readonly at: string;
  /**
   * 1, 2, 3, ... per job, one number per event (a transition, or an update of the latest one's
   * message, exit code or Kueue queue): the SSE event id of the same event. The backend may deduplicate on
   * (jobId, sequence); a number never stands for two events.
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
  const queue = transition.queue;
  const place = queue
    ? ` [${queue.name}${queue.position !== undefined ? `, position ${queue.position}` : ""}${queue.flavor !== undefined ? `, for ${queue.flavor}` : ""}]`
    : "";
  return { level, message: `dispatcher: ${transition.phase}${attempt}, ${transition.reason}${detail}${place}` };
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
  /** The highest sequence recorded on the Job as acknowledged. */
  recorded: number;
  /** The highest sequence the backend acknowledged, recorded or not: a failed record is retried without re-posting. */
  acknowledged: number;
  /** The same for the event's log line, its second call. */
  logged: number;
  /** Events not yet recorded, in order. */
  events: StreamEvent[];
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
      if (!queue.running && queue.events.length > 0) void this.drain(queue);
    }
  }

  /** Feed from the status stream: one event to deliver, after those before it. */
  push(event: StreamEvent): void {
    if (this.closed) return;
    const queue = this.queueOf(event.job);
    if (event.sequence > queue.recorded) queue.events.push(event);
    if (this.active && !queue.running && queue.events.length > 0) void this.drain(queue);
  }

  /** Feed from the watch: what the Job records as acknowledged (another replica may have delivered it). */
  recorded(job: V1Job): void {
    if (this.closed) return;
    const record = parseDeliveryRecord(job.metadata?.annotations?.[ANNOTATION.deliveredTransitions]);
    const queue = this.queues.get(jobKeyOf(job));
    if (!queue || !record || record.count <= queue.recorded) return;
    queue.recorded = record.count;
    queue.acknowledged = Math.max(queue.acknowledged, record.count);
    queue.logged = Math.max(queue.logged, record.count);
    if (!queue.running) queue.events = queue.events.filter((event) => event.sequence > record.count);
  }

  private queueOf(job: V1Job): JobQueue {
    // Keyed by uid: a Job created again under a deleted one's name starts from its own record.
    const key = jobKeyOf(job);
    const known = this.queues.get(key);
    if (known) return known;
    const recorded = parseDeliveryRecord(job.metadata?.annotations?.[ANNOTATION.deliveredTransitions])?.count ?? 0;
    const queue: JobQueue = {
      jobId: Number(job.metadata?.labels?.[LABEL.jobId]),
      name: job.metadata?.name ?? "",
      recorded,
      acknowledged: recorded,
      logged: recorded,
      events: [],
      running: false,
    };
    this.queues.set(key, queue);
    return queue;
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
    return [...this.queues.values()].filter((queue) => queue.events.length > 0).length;
  }

  close(): void {
    this.closed = true;
  }

  private async drain(queue: JobQueue): Promise<void> {
    queue.running = true;
    let failures = 0;
    try {
      for (let event = queue.events[0]; event && !this.closed && this.active; event = queue.events[0]) {
        const { transition, sequence } = event;
        try {
          const release = await this.slot();
          try {
            if (queue.acknowledged < sequence) {
              await this.post(queue.jobId, "status", statusCallbackOf(transition, sequence), sequence);
              queue.acknowledged = sequence;
            }
            if (queue.logged < sequence) {
              await this.post(queue.jobId, "logs", logCallbackOf(transition), sequence);
              queue.logged = sequence;
            }
            await this.record(queue.name, event);
          } finally {
            release();
          }
          queue.recorded = Math.max(queue.recorded, sequence);
          queue.events = queue.events.filter((pending) => pending.sequence > queue.recorded);
          failures = 0;
          // From the transition, or for an update of one, from when it was pushed.
          const since = event.update ? event.pushedAt : Date.parse(transition.at);
          this.props.observer?.delivered?.(queue.jobId, transition, (Date.now() - since) / 1000);
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

  private async record(name: string, { sequence, transition, numbers }: StreamEvent): Promise<void> {
    const patch = {
      metadata: { annotations: { [ANNOTATION.deliveredTransitions]: JSON.stringify(deliveryRecord(sequence, transition, numbers)) } },
    };
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
    ...(transition.queue !== undefined && { queue: transition.queue }),
    at: transition.at,
    sequence,
  };
}

function withTrailingSlash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}
