/**
 * The dispatcher's Prometheus metrics (names in metric-names.ts, which the alert
 * rules and the dashboard share). Counters move on what the dispatcher sees happen;
 * the per-phase gauge and GPU-seconds are computed from the watch at scrape time.
 */
import type { V1Job } from "@kubernetes/client-node";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { LABEL } from "../../charts-ts/labels.ts";
import { METRIC, METRIC_LABEL } from "../metric-names.ts";
import { gpuDemandOf } from "../status/node-fit.ts";
import { PHASES, type Transition } from "../status/status-model.ts";
import { type JobUpdate, jobKeyOf } from "./job-watch.ts";
import type { StreamEvent } from "./status-stream.ts";

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const WAIT_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600];

export class DispatcherMetrics {
  readonly registry = new Registry();
  private readonly submissions: Counter;
  private readonly submitDuration: Histogram;
  private readonly transitions: Counter;
  private readonly queuedDuration: Histogram;
  private readonly timeToRunning: Histogram;
  private readonly retries: Counter;
  private readonly callbackFailures: Counter;
  private readonly deliveryLag: Histogram;
  private readonly gpuSeconds: Counter;
  /** GPU-seconds already added, per Job (uid): the counter grows by the difference at each scrape. */
  private readonly gpuAccounted = new Map<string, number>();
  private latest: () => readonly JobUpdate[] = () => [];

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.submissions = new Counter({
      name: METRIC.submissions,
      help: "Job submissions by framework and result (created, existing, conflict, invalid, error).",
      labelNames: [METRIC_LABEL.framework, METRIC_LABEL.result],
      registers,
    });
    this.submitDuration = new Histogram({
      name: METRIC.submitDuration,
      help: "Seconds from receiving POST /v1/jobs to answering it.",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.transitions = new Counter({
      name: METRIC.transitions,
      help: "Status transitions by previous phase, new phase and reason.",
      labelNames: [METRIC_LABEL.from, METRIC_LABEL.to, METRIC_LABEL.reason],
      registers,
    });
    this.queuedDuration = new Histogram({
      name: METRIC.queuedDuration,
      help: "Seconds a job spent queued (unschedulable) before it left the queue.",
      buckets: WAIT_BUCKETS,
      registers,
    });
    this.timeToRunning = new Histogram({
      name: METRIC.timeToRunning,
      help: "Seconds from a job's creation to its first running attempt.",
      buckets: WAIT_BUCKETS,
      registers,
    });
    this.retries = new Counter({
      name: METRIC.retries,
      help: "Retried attempts by cause (Error, OOMKilled, Preempted).",
      labelNames: [METRIC_LABEL.cause],
      registers,
    });
    this.callbackFailures = new Counter({
      name: METRIC.callbackFailures,
      help: "Failed status callbacks to the backend (each retried).",
      registers,
    });
    this.deliveryLag = new Histogram({
      name: METRIC.callbackDeliveryLag,
      help: "Seconds from a transition to the backend acknowledging it.",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const self = this;
    this.gpuSeconds = new Counter({
      name: METRIC.gpuSeconds,
      help: "GPU-seconds used by training attempts, by project.",
      labelNames: [METRIC_LABEL.project],
      registers,
      collect() {
        self.accountGpuSeconds();
      },
    });
    new Gauge({
      name: METRIC.jobsByPhase,
      help: "Tracked training jobs by phase.",
      labelNames: [METRIC_LABEL.phase],
      registers,
      collect() {
        const byPhase = Map.groupBy(self.latest(), (update) => update.status.phase);
        for (const phase of PHASES) this.set({ [METRIC_LABEL.phase]: phase }, byPhase.get(phase)?.length ?? 0);
      },
    });
  }

  /** Where the scrape-time metrics read the tracked jobs from. */
  track(latest: () => readonly JobUpdate[]): void {
    this.latest = latest;
  }

  submission(framework: string, result: string, seconds: number): void {
    this.submissions.inc({ [METRIC_LABEL.framework]: framework, [METRIC_LABEL.result]: result });
    this.submitDuration.observe(seconds);
  }

  callbackFailed(): void {
    this.callbackFailures.inc();
  }

  callbackDelivered(lagSeconds: number): void {
    this.deliveryLag.observe(Math.max(0, lagSeconds));
  }

  /** Feed from the status stream: each transition counted once; an update of one is not a transition. */
  observe(event: StreamEvent): void {
    if (!event.update) this.observeTransition(event.previous, event.transition, event.history);
  }

  /** A deleted Job's bookkeeping goes with it. */
  forget(job: V1Job): void {
    this.gpuAccounted.delete(jobKeyOf(job));
  }

  private observeTransition(previous: Transition | undefined, transition: Transition, all: readonly Transition[]): void {
    this.transitions.inc({
      [METRIC_LABEL.from]: previous?.phase ?? "none",
      [METRIC_LABEL.to]: transition.phase,
      [METRIC_LABEL.reason]: transition.reason,
    });
    const seconds = (from: Transition) => (Date.parse(transition.at) - Date.parse(from.at)) / 1000;
    if (previous?.phase === "queued") this.queuedDuration.observe(seconds(previous));
    if (transition.phase === "retrying") this.retries.inc({ [METRIC_LABEL.cause]: transition.reason });
    const first = all[0];
    if (transition.phase === "running" && first && !all.slice(0, -1).some((t) => t.phase === "running")) {
      this.timeToRunning.observe(seconds(first));
    }
  }

  private accountGpuSeconds(): void {
    const now = Date.now();
    for (const { job, status } of this.latest()) {
      const gpus = gpuDemandOf(job)?.gpus ?? 0;
      if (gpus === 0 || status.startTime === undefined) continue;
      const end = status.completionTime !== undefined ? Date.parse(status.completionTime) : now;
      const total = (gpus * Math.max(0, end - Date.parse(status.startTime))) / 1000;
      const done = this.gpuAccounted.get(jobKeyOf(job)) ?? 0;
      if (total > done) {
        this.gpuSeconds.inc({ [METRIC_LABEL.project]: job.metadata?.labels?.[LABEL.projectId] ?? "none" }, total - done);
        this.gpuAccounted.set(jobKeyOf(job), total);
      }
    }
  }
}
