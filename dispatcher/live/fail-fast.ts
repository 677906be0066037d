/**
 * Ends jobs that cannot start instead of letting them hang:
 * - a trainer container stuck waiting on its image or its configuration (ErrImagePull,
 *   ImagePullBackOff, CreateContainerConfigError, ...) past the startup deadline;
 * - a queued job that no node could ever take (node-fit.ts says when that is certain),
 *   at once: waiting cannot help it;
 * - a job whose pod the API server will never admit (above the LimitRange, forbidden by Pod
 *   Security: pod-admission.ts), at once;
 * - a job Kueue can never admit (no flavor matches it, or it is larger than any quota:
 *   kueue-workload.ts), at once.
 * The Job is suspended (the Job controller removes its pods, no further attempts) and
 * annotated with the reason, which the status derivation reports as `failed`; a Job queued by
 * Kueue also has its Workload deactivated (StoppedWorkloads, workload-deactivation.ts). Every
 * replica may do it: the patch carries the resourceVersion it judged, so only the first
 * verdict lands and its time never changes.
 */
import { ApiException, BatchV1Api, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { ANNOTATION } from "../../charts-ts/labels.ts";
import { type Log, noLog } from "../log.ts";
import { type FailedFast, historyOf, IMAGE_TROUBLE } from "../status/job-status.ts";
import { autoscalerVerdict, capacityVerdict, type GpuNodeCapacity, gpuDemandOf } from "../status/node-fit.ts";
import { podRefusalOf } from "../status/pod-admission.ts";
import { REASON } from "../status/status-model.ts";
import type { GpuNodes } from "./gpu-nodes.ts";
import type { JobUpdate, JobWatch } from "./job-watch.ts";

const RETRY_MS = 5_000;
const NO_NODES: GpuNodeCapacity = new Map();

export interface FailFastProps {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly watch: JobWatch;
  /** How long a trainer may wait on its image or configuration. */
  readonly startupDeadlineSeconds: number;
  /**
   * GPUs per node of the largest pool of each gpu-type, as the stack declared them.
   * @default none declared: only present nodes and the autoscaler tell
   */
  readonly gpuNodeCapacity?: GpuNodeCapacity;
  /** The GPU nodes the cluster has now. @default not watched */
  readonly gpuNodes?: GpuNodes;
  /** @default no log */
  readonly log?: Log;
}

interface Verdict {
  readonly reason: string;
  readonly message: string;
  /** When the job is to fail (epoch ms): a stuck state gets until its deadline. */
  readonly due: number;
}

export class FailFast {
  private readonly props: FailFastProps;
  private readonly batch: BatchV1Api;
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(props: FailFastProps) {
    this.props = props;
    this.batch = props.kubeConfig.makeApiClient(BatchV1Api);
    props.watch.onUpdate((update) => this.consider(update));
    props.watch.onRemoved((job) => {
      const name = job.metadata?.name ?? "";
      clearTimeout(this.timers.get(name));
      this.timers.delete(name);
    });
    // A node that joins or leaves changes what fits: judge the queued jobs again.
    props.gpuNodes?.onChange(() => {
      for (const update of props.watch.current()) if (update.status.phase === "queued") this.consider(update);
    });
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /** Why and when the job is to fail, if it is; a new update replaces any earlier verdict. */
  private verdict({ job, status, events }: JobUpdate): Verdict | undefined {
    const since = status.transitions.at(-1)?.at ?? "";
    const waiting = status.phase === "pending" || status.phase === "queued";
    if (waiting && status.reason === REASON.podRejected) {
      const refusal = podRefusalOf(status.message ?? "");
      return refusal.permanent
        ? { reason: refusal.reason, message: `the namespace will never admit the trainer's pod: ${refusal.message}`, due: 0 }
        : undefined;
    }
    if (status.phase === "queued" && status.reason === REASON.inadmissible)
      return { reason: REASON.inadmissible, message: `no queue could ever admit this job: ${status.message ?? ""}`, due: 0 };
    if (status.phase === "queued") {
      const demand = gpuDemandOf(job);
      const observed = this.props.gpuNodes?.largestNodes() ?? NO_NODES;
      const why = (demand && capacityVerdict(demand, this.props.gpuNodeCapacity ?? NO_NODES, observed)) ?? autoscalerVerdict(events, since);
      return why === undefined ? undefined : { reason: REASON.noNodeFits, message: `no node could ever run this job: ${why}`, due: 0 };
    }
    if ((status.phase === "starting" || status.phase === "retrying") && IMAGE_TROUBLE.has(status.reason)) {
      const stuckSince = Date.parse(since);
      if (Number.isNaN(stuckSince)) return undefined;
      const deadline = this.props.startupDeadlineSeconds;
      return {
        reason: status.reason,
        message: `the trainer could not start within ${deadline}s: ${status.message ?? status.reason}`,
        due: stuckSince + deadline * 1000,
      };
    }
    return undefined;
  }

  private consider(update: JobUpdate): void {
    const name = update.job.metadata?.name ?? update.status.name;
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
    const verdict = this.verdict(update);
    // A status that does not change brings no update, so a deadline needs its own timer.
    if (verdict) this.schedule(name, Math.max(0, verdict.due - Date.now()));
  }

  private schedule(name: string, delayMs: number): void {
    // A failed patch (API server away) is tried again: no update may come to re-arm it.
    this.timers.set(
      name,
      setTimeout(
        () =>
          void this.giveUp(name).catch((error: unknown) => {
            // A conflict means the Job changed after what was judged: its update, on its way, is judged again.
            if (!(error instanceof ApiException && error.code === 409)) this.schedule(name, RETRY_MS);
          }),
        delayMs,
      ),
    );
  }

  private async giveUp(name: string): Promise<void> {
    this.timers.delete(name);
    const current = this.props.watch.get(name);
    const verdict = current && this.verdict(current);
    if (!current || !verdict) return;
    if (verdict.due > Date.now()) {
      this.schedule(name, verdict.due - Date.now());
      return;
    }
    const failed: FailedFast = { reason: verdict.reason, message: verdict.message, at: new Date().toISOString() };
    await this.batch.patchNamespacedJob(
      {
        name,
        namespace: this.props.namespace,
        body: {
          metadata: {
            // Only the Job that was judged: a second verdict (another update, another replica)
            // must not rewrite the first one's time after it has been reported.
            resourceVersion: current.job.metadata?.resourceVersion,
            annotations: {
              [ANNOTATION.failedFast]: JSON.stringify(failed),
              [ANNOTATION.history]: JSON.stringify(historyOf(current.status)),
            },
          },
          spec: { suspend: true },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    (this.props.log ?? noLog)("info", "job failed fast", { job: name, reason: failed.reason, detail: failed.message });
  }
}
