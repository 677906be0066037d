/**
 * One watch per kind (training Jobs, their Pods, Pod and Job Events, and with Kueue their
 * Workloads) instead of the plan's
 * per-job polling: the API server pushes changes, each watch resumes from its last
 * resourceVersion and relists on 410 Gone (client-node's ListWatch does both), and a
 * watch that breaks is restarted with capped, jittered backoff so a dead API server
 * sees a bounded request rate. Every change re-derives the affected job's status
 * with the same pure function the HTTP routes use, and listeners hear about it.
 */
import {
  BatchV1Api,
  CoreV1Api,
  type CoreV1Event,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  ListWatch,
  type V1Job,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";
import { JOB_UID_LABEL } from "../../charts-ts/kueue-contract.ts";
import { JOB_NAME_LABEL, LABEL, TRAINING_JOB_APP, trainingJobNameOf, trainingJobNameOfPod } from "../../charts-ts/labels.ts";
import { errorFields, type Log, noLog } from "../log.ts";
import { deriveJobStatus } from "../status/job-status.ts";
import { type KueueObjects, preemptorUidOf, queuedByKueue, type Workload } from "../status/kueue-workload.ts";
import type { JobStatus } from "../status/status-model.ts";
import { isSettled, jobNameOfWorkload, WORKLOADS } from "./kueue-api.ts";
import { QueuePositions } from "./queue-positions.ts";

const TRAINING_SELECTOR = `${LABEL.app}=${TRAINING_JOB_APP}`;

export interface JobUpdate {
  readonly job: V1Job;
  readonly status: JobStatus;
  /** The events of the job's pods the status was derived from (the autoscaler's among them). */
  readonly events: readonly CoreV1Event[];
}

export interface JobWatchProps {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** First restart delay after a broken watch; doubles up to maxRestartDelayMs. @default 200 */
  readonly minRestartDelayMs?: number;
  /** @default 10_000 */
  readonly maxRestartDelayMs?: number;
  /**
   * Jobs are queued by Kueue: watch their Workloads and poll the visibility API for the positions
   * of those waiting (the dispatcher's RBAC must grant both).
   * @default false
   */
  readonly kueue?: boolean;
  /** How often the queue positions are polled while a job waits in Kueue. @default 2_000 */
  readonly queuePollIntervalMs?: number;
  /** @default no log */
  readonly log?: Log;
}

/** What per-job state is keyed by: a Job deleted and created again under its name is a new job. */
export function jobKeyOf(job: V1Job): string {
  return job.metadata?.uid ?? job.metadata?.name ?? "";
}

export function jobIdOf(job: V1Job): number {
  return Number(job.metadata?.labels?.[LABEL.jobId]);
}

/** A jittered, capped exponential delay: full jitter over [base/2, base]. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** attempt);
  return Math.round(base / 2 + (random() * base) / 2);
}

export interface RestartPolicy {
  /** What is watched, for the log line each break writes. */
  readonly watch: string;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly stopped: () => boolean;
  /** @default no log */
  readonly log?: Log;
  /** Hears of each break: what broke it, and how long until the restart. */
  readonly restarted?: (error: unknown, delayMs: number) => void;
}

/**
 * Restarts a ListWatch that broke, after a capped, jittered delay that grows with each
 * failure in a row, so a dead API server sees a bounded, falling request rate. start()
 * keeps the resourceVersion, so the watch resumes where it broke. ListWatch says
 * "connect" before it has even listed, so a run of failures ends only when a restarted
 * watch has stayed up for twice the longest delay.
 */
export function restartWhenBroken<T extends KubernetesObject>(listWatch: Pick<ListWatch<T>, "on" | "start">, policy: RestartPolicy): void {
  let failures = 0;
  let restartedAt = Number.NEGATIVE_INFINITY;
  listWatch.on("error", (error: unknown) => {
    if (policy.stopped()) return;
    if (Date.now() - restartedAt > policy.maxDelayMs * 2) failures = 0;
    const delay = backoffDelay(failures, policy.minDelayMs, policy.maxDelayMs);
    failures += 1;
    const fields = errorFields(error);
    // Forbidden does not heal by retrying: the RBAC the platform chart grants is missing.
    (policy.log ?? noLog)(fields.status === 403 ? "error" : "warn", "watch broke; restarting it", {
      watch: policy.watch,
      restartInMs: delay,
      ...fields,
    });
    policy.restarted?.(error, delay);
    setTimeout(() => {
      restartedAt = Date.now();
      if (!policy.stopped()) void listWatch.start().catch(() => undefined);
    }, delay);
  });
}

type Listener = (update: JobUpdate) => void;

export class JobWatch {
  private readonly props: Required<JobWatchProps>;
  private readonly jobs: ListWatch<V1Job>;
  private readonly pods: ListWatch<V1Pod>;
  private readonly events: ListWatch<CoreV1Event>;
  private readonly jobEvents: ListWatch<CoreV1Event>;
  /** With Kueue: the Workloads, and the positions of those waiting. */
  private readonly workloads?: ListWatch<Workload & KubernetesObject>;
  readonly queuePositions?: QueuePositions;
  private readonly workloadsByJob = new Map<string, Map<string, Workload & KubernetesObject>>();
  private readonly listeners = new Set<Listener>();
  private readonly dirty = new Set<string>();
  /** The latest derivation of each job, by Job name: what listeners last heard. */
  private readonly latest = new Map<string, JobUpdate>();
  private readonly podsByJob = new Map<string, Map<string, V1Pod>>();
  private readonly eventsByJob = new Map<string, Map<string, CoreV1Event>>();
  private flushScheduled = false;
  private stopped = true;
  /** Watch restarts so far: the tests and /metrics read it. */
  restarts = 0;

  constructor(props: JobWatchProps) {
    this.props = { minRestartDelayMs: 200, maxRestartDelayMs: 10_000, log: noLog, kueue: false, queuePollIntervalMs: 2_000, ...props };
    const batch = props.kubeConfig.makeApiClient(BatchV1Api);
    const core = props.kubeConfig.makeApiClient(CoreV1Api);
    const watch = new Watch(props.kubeConfig);
    const namespace = props.namespace;
    this.jobs = new ListWatch<V1Job>(
      `/apis/batch/v1/namespaces/${namespace}/jobs`,
      watch,
      () => batch.listNamespacedJob({ namespace, labelSelector: TRAINING_SELECTOR }),
      false,
      TRAINING_SELECTOR,
    );
    this.pods = new ListWatch<V1Pod>(
      `/api/v1/namespaces/${namespace}/pods`,
      watch,
      () => core.listNamespacedPod({ namespace, labelSelector: TRAINING_SELECTOR }),
      false,
      TRAINING_SELECTOR,
    );
    // Events carry no labels; a field selector per kind keeps them to pods (scheduling, image pulls)
    // and to Jobs (the Job controller's FailedCreate: the API server refused a pod for quota,
    // LimitRange, Pod Security), and only a training Job's reach a status.
    const eventsAbout = (kind: string) => {
      const selector = `involvedObject.kind=${kind}`;
      return new ListWatch<CoreV1Event>(
        `/api/v1/namespaces/${namespace}/events`,
        watch,
        () => core.listNamespacedEvent({ namespace, fieldSelector: selector }),
        false,
        undefined,
        selector,
      );
    };
    this.events = eventsAbout("Pod");
    this.jobEvents = eventsAbout("Job");
    this.wire("jobs", this.jobs, (job) => job.metadata?.name);
    this.wire("pods", this.pods, (pod) => pod.metadata?.labels?.[JOB_NAME_LABEL], this.podsByJob);
    this.wire("events", this.events, (event) => trainingJobNameOfPod(event.involvedObject?.name), this.eventsByJob);
    this.wire("job events", this.jobEvents, (event) => trainingJobNameOf(event.involvedObject?.name), this.eventsByJob);
    if (this.props.kueue) {
      const custom = props.kubeConfig.makeApiClient(CustomObjectsApi);
      this.workloads = new ListWatch<Workload & KubernetesObject>(
        `/apis/${WORKLOADS.group}/${WORKLOADS.version}/namespaces/${namespace}/${WORKLOADS.plural}`,
        watch,
        async () =>
          (await custom.listNamespacedCustomObject({ ...WORKLOADS, namespace })) as {
            metadata: { resourceVersion: string };
            items: (Workload & KubernetesObject)[];
          },
        false,
      );
      this.wire("workloads", this.workloads, (workload) => trainingJobNameOf(jobNameOfWorkload(workload)), this.workloadsByJob);
      const positions = new QueuePositions({
        kubeConfig: props.kubeConfig,
        namespace,
        intervalMs: this.props.queuePollIntervalMs,
        log: this.props.log,
        waiting: () => this.waitingByQueue(),
        changed: (jobName) => this.markDirty(jobName),
      });
      this.queuePositions = positions;
      for (const event of ["add", "update", "delete"] as const) this.workloads.on(event, () => positions.poke());
    }
  }

  /** LocalQueue -> (Workload -> Job name) of every tracked Workload still waiting for quota. */
  private waitingByQueue(): Map<string, Map<string, string>> {
    const byQueue = new Map<string, Map<string, string>>();
    for (const [jobName, workloads] of this.workloadsByJob) {
      for (const workload of workloads.values()) {
        const queue = workload.spec?.queueName;
        const name = workload.metadata?.name;
        if (queue === undefined || name === undefined || isSettled(workload)) continue;
        byQueue.set(queue, (byQueue.get(queue) ?? new Map()).set(name, jobName));
      }
    }
    return byQueue;
  }

  /** What Kueue says of a job: its Workload, position and preemptor (a Job of this namespace, by uid). */
  private kueueObjectsOf(job: V1Job): KueueObjects {
    // By the Job's uid: a Workload of a deleted Job of the same name may linger a moment.
    const workload = [...(this.workloadsByJob.get(job.metadata?.name ?? "")?.values() ?? [])].find(
      (candidate) => candidate.metadata?.labels?.[JOB_UID_LABEL] === job.metadata?.uid,
    );
    if (!workload) return {};
    const position = this.queuePositions?.positionOf(workload.metadata?.name);
    const preemptorUid = preemptorUidOf(workload);
    const preemptor =
      preemptorUid === undefined ? undefined : this.jobs.list(this.props.namespace).find((job) => job.metadata?.uid === preemptorUid);
    return {
      workload,
      ...(position !== undefined && { position }),
      ...(preemptor?.metadata?.name !== undefined && { preemptor: preemptor.metadata.name }),
    };
  }

  onUpdate(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Hears of each Job deleted (TTL, by hand, or gone at a relist), so per-job state can go with it. */
  onRemoved(listener: (job: V1Job) => void): void {
    this.jobs.on("delete", listener);
  }

  async start(): Promise<void> {
    this.stopped = false;
    await Promise.all([this.jobs.start(), this.pods.start(), this.events.start(), this.jobEvents.start(), this.workloads?.start()]);
    this.queuePositions?.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.queuePositions?.stop();
    await Promise.all([this.jobs.stop(), this.pods.stop(), this.events.stop(), this.jobEvents.stop(), this.workloads?.stop()]);
  }

  /** Every tracked job's latest status. */
  current(): JobUpdate[] {
    return [...this.latest.values()];
  }

  /** One job's latest status, by Job name. */
  get(jobName: string): JobUpdate | undefined {
    return this.latest.get(jobName);
  }

  /**
   * Routes each change to its job; with an index, keeps the job's objects by uid so a
   * derivation reads only its own pods and events (10,000 jobs must not mean 10,000² work).
   */
  private wire<T extends KubernetesObject>(
    what: string,
    listWatch: ListWatch<T>,
    jobNameOf: (object: T) => string | undefined,
    index?: Map<string, Map<string, T>>,
  ): void {
    const touched = (removed: boolean) => (object: T) => {
      const name = jobNameOf(object);
      if (!name) return;
      if (index) {
        const uid = object.metadata?.uid ?? "";
        const objects = index.get(name) ?? new Map<string, T>();
        if (removed) objects.delete(uid);
        else objects.set(uid, object);
        if (objects.size === 0) index.delete(name);
        else index.set(name, objects);
      }
      this.markDirty(name);
    };
    listWatch.on("add", touched(false));
    listWatch.on("update", touched(false));
    listWatch.on("delete", touched(true));
    restartWhenBroken(listWatch, {
      watch: what,
      minDelayMs: this.props.minRestartDelayMs,
      maxDelayMs: this.props.maxRestartDelayMs,
      stopped: () => this.stopped,
      log: this.props.log,
      restarted: () => {
        this.restarts += 1;
      },
    });
  }

  /** Coalesces a burst of changes (a pod update and its event) into one derivation per job. */
  private markDirty(jobName: string): void {
    this.dirty.add(jobName);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const names = [...this.dirty];
      this.dirty.clear();
      for (const name of names) this.derive(name);
    });
  }

  private derive(jobName: string): void {
    const job = this.jobs.get(jobName, this.props.namespace);
    if (!job) {
      this.latest.delete(jobName);
      return;
    }
    const pods = [...(this.podsByJob.get(jobName)?.values() ?? [])];
    const events = [...(this.eventsByJob.get(jobName)?.values() ?? [])];
    const objects = { job, pods, events };
    const status = deriveJobStatus(
      this.workloads && queuedByKueue(job) ? { ...objects, kueue: this.kueueObjectsOf(job) } : objects,
      jobIdOf(job),
    );
    const update = { job, status, events };
    this.latest.set(jobName, update);
    for (const listener of this.listeners) listener(update);
  }
}
