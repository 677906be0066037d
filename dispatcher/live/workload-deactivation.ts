/**
 * Ends a queued Job the way Kueue expects: by deactivating its Workload (`spec.active: false`).
 * With queueing on, Kueue owns the Job's `suspend`: it unsuspends a suspended Job whose Workload
 * is admitted, so suspending the Job alone would not stop it, and a stopped Job whose Workload
 * stayed active would be admitted again when quota frees. An inactive Workload is evicted
 * (Kueue suspends the Job, the Job controller removes its pods gracefully) and never admitted
 * again.
 *
 * Kueue creates the Workload a moment after the Job, so a stop right after submit may find
 * none: `deactivate` waits for it a while, and `StoppedWorkloads` (below) finishes the work on
 * a later update of the Job, whichever replica sees it.
 */
import {
  ApiException,
  BatchV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Job,
} from "@kubernetes/client-node";
import { JOB_UID_LABEL, KUEUE_API_VERSION } from "../../charts-ts/kueue-contract.ts";
import { ANNOTATION } from "../../charts-ts/labels.ts";
import { errorFields, type Log, noLog } from "../log.ts";
import { queuedByKueue, type Workload } from "../status/kueue-workload.ts";
import { type JobWatch, jobKeyOf } from "./job-watch.ts";
import { listWorkloads } from "./kueue-api.ts";

const [GROUP, VERSION] = KUEUE_API_VERSION.split("/") as [string, string];
const POLL_MS = 100;
const RETRY_MS = 2_000;

/** Whether the dispatcher has ended this job (stopped on request, or failed fast) and not yet seen its Workload inactive. */
function awaitsDeactivation(job: V1Job): boolean {
  const annotations = job.metadata?.annotations ?? {};
  const ended = annotations[ANNOTATION.stoppedAt] !== undefined || annotations[ANNOTATION.failedFast] !== undefined;
  return ended && annotations[ANNOTATION.workloadDeactivated] === undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class WorkloadDeactivation {
  private readonly custom: CustomObjectsApi;
  private readonly namespace: string;

  constructor(kubeConfig: KubeConfig, namespace: string) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.namespace = namespace;
  }

  /** The Job's Workload, found by the Job's uid, which Kueue labels it with. */
  async workloadOf(job: V1Job): Promise<Workload | undefined> {
    return (await listWorkloads(this.custom, this.namespace, `${JOB_UID_LABEL}=${job.metadata?.uid}`))[0];
  }

  /**
   * Deactivates the Job's Workload, waiting up to `waitMs` for Kueue to create it. True once the
   * Workload is inactive (already, or now); false when there is none yet.
   */
  async deactivate(job: V1Job, waitMs = 0): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    let workload = await this.workloadOf(job);
    while (workload === undefined && Date.now() < deadline) {
      await sleep(POLL_MS);
      workload = await this.workloadOf(job);
    }
    if (workload === undefined) return false;
    if (workload.spec?.active === false) return true;
    try {
      await this.custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace: this.namespace,
          plural: "workloads",
          name: workload.metadata?.name ?? "",
          body: { spec: { active: false } },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    } catch (error) {
      // Gone meanwhile (the Job was deleted): nothing is left to admit.
      if (!(error instanceof ApiException && error.code === 404)) throw error;
    }
    return true;
  }
}

export interface StoppedWorkloadsProps {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly watch: JobWatch;
  /** @default no log */
  readonly log?: Log;
}

/**
 * Keeps every queued Job the dispatcher ended (stopped, failed fast) out of Kueue's hands: its
 * Workload inactive. Covers a stop that came before Kueue made the Workload, and fail-fast, which
 * suspends the Job (an admitted Workload would have Kueue unsuspend it). Once done, the Job records
 * it (ANNOTATION.workloadDeactivated), so a restarted replica reads no Workload for settled jobs.
 */
export class StoppedWorkloads {
  private readonly props: StoppedWorkloadsProps;
  private readonly workloads: WorkloadDeactivation;
  private readonly batch: BatchV1Api;
  /** Jobs (uid) whose Workload this replica found inactive or is deactivating. */
  private readonly settled = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(props: StoppedWorkloadsProps) {
    this.props = props;
    this.workloads = new WorkloadDeactivation(props.kubeConfig, props.namespace);
    this.batch = props.kubeConfig.makeApiClient(BatchV1Api);
    props.watch.onUpdate(({ job }) => this.consider(job));
    props.watch.onRemoved((job) => {
      const key = jobKeyOf(job);
      this.settled.delete(key);
      clearTimeout(this.timers.get(key));
      this.timers.delete(key);
    });
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private consider(job: V1Job): void {
    const key = jobKeyOf(job);
    if (!queuedByKueue(job) || !awaitsDeactivation(job) || this.settled.has(key) || this.timers.has(key)) return;
    this.settled.add(key);
    this.deactivate(job).then(
      (done) => {
        // No Workload yet: Kueue makes one soon, and no update of the Job may come to say so.
        if (!done) this.retry(job);
      },
      (error: unknown) => {
        (this.props.log ?? noLog)("warn", "could not deactivate a stopped job's Workload; retrying", {
          job: job.metadata?.name,
          ...errorFields(error),
        });
        this.retry(job);
      },
    );
  }

  /** Deactivates the Workload, then records on the Job that it is done. False when there is no Workload yet. */
  private async deactivate(job: V1Job): Promise<boolean> {
    if (!(await this.workloads.deactivate(job))) return false;
    await this.batch.patchNamespacedJob(
      {
        name: job.metadata?.name ?? "",
        namespace: this.props.namespace,
        body: { metadata: { annotations: { [ANNOTATION.workloadDeactivated]: new Date().toISOString() } } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    return true;
  }

  private retry(job: V1Job): void {
    const key = jobKeyOf(job);
    this.settled.delete(key);
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        const current = this.props.watch.get(job.metadata?.name ?? "")?.job;
        if (current && jobKeyOf(current) === key) this.consider(current);
      }, RETRY_MS),
    );
  }
}
