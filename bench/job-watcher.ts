/**
 * A plain watch on the bench's Jobs, separate from the dispatcher's: it records
 * when this process first sees a Job's terminal condition, the reference time
 * for every status-propagation latency (conditions' lastTransitionTime has only
 * 1 s resolution).
 */
import { type KubeConfig, type V1Job, type V1Pod, Watch } from "@kubernetes/client-node";
import { KUEUE_API_VERSION } from "../charts-ts/kueue-contract.ts";
import { LABEL } from "../charts-ts/labels.ts";

/** The conditions the dispatcher reads as completed or failed (job-status.ts). */
const TERMINAL = new Set(["Complete", "SuccessCriteriaMet", "Failed", "FailureTarget"]);

export interface ConditionSighting {
  /** performance.now() of the first watch event showing a terminal condition. */
  readonly terminalAt: number;
  readonly condition: string;
  /** performance.now() of the first event showing the Complete condition itself, if seen. */
  completeAt?: number;
}

/** One plain watch of the bench's own: objects to `seen` as they come, and why it ended if it did. */
abstract class BenchWatch<T> {
  error: string | undefined;
  private controller: AbortController | undefined;
  private stopped = false;
  private readonly kubeConfig: KubeConfig;
  private readonly path: string;
  private readonly labelSelector: string;

  constructor(kubeConfig: KubeConfig, path: string, labelSelector: string) {
    this.kubeConfig = kubeConfig;
    this.path = path;
    this.labelSelector = labelSelector;
  }

  /** Resolves once the watch request is open. */
  async start(): Promise<void> {
    this.controller = await new Watch(this.kubeConfig).watch(
      this.path,
      { ...(this.labelSelector !== "" && { labelSelector: this.labelSelector }), allowWatchBookmarks: false },
      (_type: string, object: T) => this.seen(object, performance.now()),
      (error: unknown) => {
        if (!this.stopped)
          this.error = `the bench's own watch of ${this.path} ended: ${error instanceof Error ? error.message : String(error ?? "closed")}`;
      },
    );
  }

  stop(): void {
    this.stopped = true;
    this.controller?.abort();
  }

  protected abstract seen(object: T, at: number): void;
}

export class ConditionWatcher extends BenchWatch<V1Job> {
  readonly sightings = new Map<number, ConditionSighting>();

  constructor(kubeConfig: KubeConfig, namespace: string, labelSelector: string) {
    super(kubeConfig, `/apis/batch/v1/namespaces/${namespace}/jobs`, labelSelector);
  }

  protected seen(job: V1Job, at: number): void {
    const jobId = Number(job.metadata?.labels?.[LABEL.jobId]);
    const conditions = (job.status?.conditions ?? []).filter((condition) => condition.status === "True");
    const terminal = conditions.find((condition) => TERMINAL.has(condition.type));
    if (!terminal) return;
    const sighting = this.sightings.get(jobId) ?? { terminalAt: at, condition: terminal.type };
    if (sighting.completeAt === undefined && conditions.some((condition) => condition.type === "Complete")) sighting.completeAt = at;
    this.sightings.set(jobId, sighting);
  }
}

/**
 * A plain watch on the bench's Pods: when this process first sees a job's trainer container
 * waiting with a given reason (ErrImagePull), the reference time for a reason change's propagation.
 */
export class PodReasonWatcher extends BenchWatch<V1Pod> {
  readonly sightings = new Map<number, number>();
  private readonly reason: string;

  constructor(kubeConfig: KubeConfig, namespace: string, labelSelector: string, reason: string) {
    super(kubeConfig, `/api/v1/namespaces/${namespace}/pods`, labelSelector);
    this.reason = reason;
  }

  protected seen(pod: V1Pod, at: number): void {
    const jobId = Number(pod.metadata?.labels?.[LABEL.jobId]);
    const waiting = pod.status?.containerStatuses?.some((container) => container.state?.waiting?.reason === this.reason);
    if (waiting && !this.sightings.has(jobId)) this.sightings.set(jobId, at);
  }
}

/** A plain watch on the bench's Pods: when this process first sees each job's pod bound to a node. */
export class PodBoundWatcher extends BenchWatch<V1Pod> {
  readonly sightings = new Map<number, number>();

  constructor(kubeConfig: KubeConfig, namespace: string, labelSelector: string) {
    super(kubeConfig, `/api/v1/namespaces/${namespace}/pods`, labelSelector);
  }

  protected seen(pod: V1Pod, at: number): void {
    const jobId = Number(pod.metadata?.labels?.[LABEL.jobId]);
    if (pod.spec?.nodeName && !this.sightings.has(jobId)) this.sightings.set(jobId, at);
  }
}

interface Workload {
  readonly metadata?: { readonly ownerReferences?: readonly { readonly kind: string; readonly name: string }[] };
  readonly status?: { readonly conditions?: readonly { readonly type: string; readonly status: string }[] };
}

/**
 * A plain watch on a namespace's Kueue Workloads: when this process first sees each job's Workload
 * admitted. Workloads carry none of the Job's labels: the job is found by the Workload's owner, its Job.
 */
export class WorkloadAdmittedWatcher extends BenchWatch<Workload> {
  readonly sightings = new Map<number, number>();
  private readonly jobIds: ReadonlyMap<string, number>;

  /** `jobIds`: the Job name of every job the bench submits, to its id. */
  constructor(kubeConfig: KubeConfig, namespace: string, jobIds: ReadonlyMap<string, number>) {
    super(kubeConfig, `/apis/${KUEUE_API_VERSION}/namespaces/${namespace}/workloads`, "");
    this.jobIds = jobIds;
  }

  protected seen(workload: Workload, at: number): void {
    const owner = workload.metadata?.ownerReferences?.find((reference) => reference.kind === "Job")?.name;
    const jobId = owner === undefined ? undefined : this.jobIds.get(owner);
    const admitted = workload.status?.conditions?.some((condition) => condition.type === "Admitted" && condition.status === "True");
    if (jobId !== undefined && admitted && !this.sightings.has(jobId)) this.sightings.set(jobId, at);
  }
}
