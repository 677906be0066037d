/**
 * (f) Admission: the same stream of submissions through the dispatcher with Kueue off and on, one
 * after the other in one run, each in its own namespace with its own dispatcher process:
 *   - off: submit -> the pod bound to a node (the scheduler is all that decides);
 *   - on (TRAINING_QUEUEING=true, the project's LocalQueue from TrainingQueues with quota to spare):
 *     submit -> Workload admitted (Kueue unsuspends the Job), and submit -> pod bound;
 *   - Kueue's own admission rate: the same number of Jobs held in the queue (ClusterQueue
 *     stopPolicy Hold), released at once, admitted per second: the figure Kueue's own
 *     performance threshold (>= 75 workloads/s admitted) speaks of, without the dispatcher's
 *     submission rate as its bound.
 * Jobs are CPU-only and tiny; their pods end after kwok's 1 s, so quota and nodes never bind.
 */
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { App, Chart } from "cdk8s";
import { clusterQueueName, KUEUE_API_VERSION, queueProjectOf } from "../../charts-ts/kueue-contract.ts";
import { trainingJobName } from "../../charts-ts/labels.ts";
import { TrainingQueues } from "../../charts-ts/platform/training-queues.ts";
import { applyObjects, chartObjects } from "../../test/integration/platform.ts";
import type { PhaseContext } from "../context.ts";
import { DispatcherChild } from "../dispatcher-child.ts";
import { PodBoundWatcher, WorkloadAdmittedWatcher } from "../job-watcher.ts";
import { BENCH_PROJECT_ID, benchRequest, nextJobId, RUN_ID } from "../requests.ts";
import { errorMessage, now, round, type Summary, sleep, summarize, until } from "../stats.ts";
import { postJob } from "./submit.ts";

const [GROUP, VERSION] = KUEUE_API_VERSION.split("/") as [string, string];

export interface AdmissionStream {
  readonly namespace: string;
  readonly jobs: number;
  readonly concurrency: number;
  readonly errors: number;
  readonly firstErrors: readonly string[];
  /** Accepted submissions per second, first POST to last answer. */
  readonly submissionsPerSecond: number;
  /** POST /v1/jobs latency under this stream (with Kueue: its webhooks on the create, the LocalQueue read). */
  readonly submitMs?: Summary | undefined;
  /** Submit (POST sent) -> Workload admitted; Kueue on only. */
  readonly admittedMs?: Summary | undefined;
  /** Workloads admitted per second, first POST to last admission; Kueue on only. */
  readonly admittedPerSecond?: number;
  /** Submit (POST sent) -> the pod bound to a node. */
  readonly boundMs: Summary | undefined;
  /** Pods bound per second, first POST to last binding. */
  readonly boundPerSecond: number;
  /** Accepted jobs never seen admitted / bound within the wait. */
  readonly missing: { readonly admitted: number; readonly bound: number };
}

export interface AdmissionBacklog {
  readonly jobs: number;
  /** Release of the held queue -> each Workload admitted. */
  readonly admittedMs: Summary | undefined;
  /** Workloads admitted per second, release to last admission. */
  readonly admittedPerSecond: number;
  readonly missing: number;
}

export interface AdmissionResult {
  readonly off: AdmissionStream;
  readonly on: AdmissionStream;
  readonly backlog: AdmissionBacklog;
}

/** Kueue's objects for one bench namespace: the bench project's queue, with quota no stream reaches. */
function queueObjects(namespace: string) {
  const chart = new Chart(new App(), "bench-queues");
  new TrainingQueues(chart, "Queues", {
    namespace,
    gpuPools: [],
    projects: [queueProjectOf(BENCH_PROJECT_ID)],
    cpuQuotaPerProject: { cpu: "100000", memory: "1000Ti" },
  });
  return chartObjects(chart);
}

class BenchQueue {
  readonly name: string;
  private readonly custom: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig, namespace: string) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.name = clusterQueueName(namespace, queueProjectOf(BENCH_PROJECT_ID));
  }

  async waitActive(signal: AbortSignal): Promise<void> {
    await until(
      `ClusterQueue ${this.name} active`,
      async () => {
        const queue = (await this.custom.getClusterCustomObject({
          group: GROUP,
          version: VERSION,
          plural: "clusterqueues",
          name: this.name,
        })) as {
          status?: { conditions?: { type: string; status: string }[] };
        };
        return queue.status?.conditions?.some((condition) => condition.type === "Active" && condition.status === "True");
      },
      60_000,
      signal,
    );
  }

  /** Hold: Kueue admits nothing new from the queue; None: admission resumes. */
  async setStopPolicy(policy: "Hold" | "None"): Promise<void> {
    await this.custom.patchClusterCustomObject(
      { group: GROUP, version: VERSION, plural: "clusterqueues", name: this.name, body: { spec: { stopPolicy: policy } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }

  async pendingWorkloads(namespace: string): Promise<number> {
    const list = (await this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: "workloads" })) as {
      items: { status?: { conditions?: { type: string; status: string }[] } }[];
    };
    return list.items.filter((workload) => !workload.status?.conditions?.some((c) => c.type === "Admitted" && c.status === "True")).length;
  }

  async delete(): Promise<void> {
    await this.custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: "clusterqueues", name: this.name });
  }
}

interface Submitted {
  /** performance.now() when each accepted job's POST was sent. */
  readonly sentAt: Map<number, number>;
  readonly latencies: number[];
  readonly errors: number;
  readonly firstErrors: string[];
  readonly seconds: number;
}

/** `jobs` submissions through the dispatcher, `concurrency` at a time. */
async function submitAll(ctx: PhaseContext, url: string, jobIds: readonly number[], concurrency: number): Promise<Submitted> {
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  const firstErrors: string[] = [];
  let errors = 0;
  let next = 0;
  const started = now();
  const worker = async () => {
    while (next < jobIds.length) {
      ctx.signal.throwIfAborted();
      const jobId = jobIds[next++] as number;
      const sent = now();
      try {
        latencies.push(await postJob(url, ctx.apiToken, benchRequest(jobId), ctx.signal));
        sentAt.set(jobId, sent);
      } catch (error) {
        if (ctx.signal.aborted) throw error;
        errors += 1;
        if (firstErrors.length < 5) firstErrors.push(errorMessage(error));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { sentAt, latencies, errors, firstErrors, seconds: (now() - started) / 1000 };
}

/** Latencies from `from` to each sighting, and the rate over the whole span. */
function measured(from: ReadonlyMap<number, number>, sightings: ReadonlyMap<number, number>, start: number) {
  const latencies: number[] = [];
  let last = start;
  for (const [jobId, sent] of from) {
    const at = sightings.get(jobId);
    if (at === undefined) continue;
    latencies.push(at - sent);
    last = Math.max(last, at);
  }
  return {
    summary: summarize(latencies),
    perSecond: latencies.length === 0 ? 0 : round(latencies.length / ((last - start) / 1000), 1),
    missing: from.size - latencies.length,
  };
}

async function stream(ctx: PhaseContext, queueing: boolean): Promise<AdmissionStream> {
  const { config, signal } = ctx;
  const namespace = await ctx.namespace(`bench-admission-${queueing ? "on" : "off"}`);
  const queue = queueing ? new BenchQueue(ctx.kubeConfig, namespace) : undefined;
  if (queue) {
    await applyObjects(ctx.kubeConfig, queueObjects(namespace));
    await queue.waitActive(signal);
  }
  const jobIds = Array.from({ length: config.admissionJobs }, nextJobId);
  const names = new Map(jobIds.map((jobId) => [trainingJobName(jobId), jobId]));
  const bound = new PodBoundWatcher(ctx.kubeConfig, namespace, `bench-run=${RUN_ID}`);
  const admitted = queueing ? new WorkloadAdmittedWatcher(ctx.kubeConfig, namespace, names) : undefined;
  await Promise.all([bound.start(), admitted?.start()]);
  const child = await DispatcherChild.start({ kubeconfig: ctx.kubeconfigPath, namespace, apiToken: ctx.apiToken, queueing });
  try {
    const started = now();
    const submitted = await submitAll(ctx, child.url, jobIds, config.admissionConcurrency);
    ctx.log(
      `admission (Kueue ${queueing ? "on" : "off"}): ${submitted.sentAt.size} submitted in ${round(submitted.seconds, 1)} s; waiting for the pods`,
    );
    const accepted = [...submitted.sentAt.keys()];
    await until(
      "every accepted job's pod bound",
      () => accepted.every((jobId) => bound.sightings.has(jobId) && (admitted === undefined || admitted.sightings.has(jobId))),
      120_000 + config.admissionJobs * 500,
      signal,
    ).catch((error: unknown) => {
      if (signal.aborted) throw error;
      ctx.warn(`admission (Kueue ${queueing ? "on" : "off"}): ${errorMessage(error)}`);
    });
    for (const watch of [bound, admitted]) if (watch?.error) ctx.warn(watch.error);
    const boundFigures = measured(submitted.sentAt, bound.sightings, started);
    const admittedFigures = admitted && measured(submitted.sentAt, admitted.sightings, started);
    return {
      namespace,
      jobs: config.admissionJobs,
      concurrency: config.admissionConcurrency,
      errors: submitted.errors,
      firstErrors: submitted.firstErrors,
      submissionsPerSecond: round(submitted.sentAt.size / submitted.seconds, 1),
      submitMs: summarize(submitted.latencies),
      ...(admittedFigures && { admittedMs: admittedFigures.summary, admittedPerSecond: admittedFigures.perSecond }),
      boundMs: boundFigures.summary,
      boundPerSecond: boundFigures.perSecond,
      missing: { admitted: admittedFigures?.missing ?? 0, bound: boundFigures.missing },
    };
  } finally {
    bound.stop();
    admitted?.stop();
    await child.stop();
    // With queueing on, the backlog runs in the same namespace and queue: both go after it.
    if (!queueing) await ctx.dropNamespace(namespace);
  }
}

/** Kueue's own rate: `jobs` Workloads held in the queue, then released at once. */
async function backlog(ctx: PhaseContext, namespace: string): Promise<AdmissionBacklog> {
  const { config, signal } = ctx;
  const queue = new BenchQueue(ctx.kubeConfig, namespace);
  const jobIds = Array.from({ length: config.admissionJobs }, nextJobId);
  const admitted = new WorkloadAdmittedWatcher(ctx.kubeConfig, namespace, new Map(jobIds.map((jobId) => [trainingJobName(jobId), jobId])));
  await queue.setStopPolicy("Hold");
  await admitted.start();
  const child = await DispatcherChild.start({ kubeconfig: ctx.kubeconfigPath, namespace, apiToken: ctx.apiToken, queueing: true });
  try {
    const submitted = await submitAll(ctx, child.url, jobIds, config.admissionConcurrency);
    // Every Workload made and waiting: then the release is all that is timed.
    await until(
      "every held job's Workload pending",
      async () => (await queue.pendingWorkloads(namespace)) >= submitted.sentAt.size,
      120_000 + config.admissionJobs * 500,
      signal,
    );
    await sleep(1000, signal);
    ctx.log(`admission backlog: ${submitted.sentAt.size} Workloads held; releasing the queue`);
    const released = now();
    await queue.setStopPolicy("None");
    const releasedAt = new Map([...submitted.sentAt.keys()].map((jobId) => [jobId, released]));
    await until(
      "every held Workload admitted",
      () => [...releasedAt.keys()].every((jobId) => admitted.sightings.has(jobId)),
      120_000 + config.admissionJobs * 500,
      signal,
    ).catch((error: unknown) => {
      if (signal.aborted) throw error;
      ctx.warn(`admission backlog: ${errorMessage(error)}`);
    });
    if (admitted.error) ctx.warn(admitted.error);
    const figures = measured(releasedAt, admitted.sightings, released);
    return { jobs: submitted.sentAt.size, admittedMs: figures.summary, admittedPerSecond: figures.perSecond, missing: figures.missing };
  } finally {
    admitted.stop();
    await child.stop();
  }
}

export async function admissionPhase(ctx: PhaseContext): Promise<AdmissionResult> {
  const off = await stream(ctx, false);
  const on = await stream(ctx, true);
  try {
    return { off, on, backlog: await backlog(ctx, on.namespace) };
  } finally {
    await ctx.dropNamespace(on.namespace);
    // Cluster-scoped: the namespace's deletion leaves it.
    await new BenchQueue(ctx.kubeConfig, on.namespace)
      .delete()
      .catch((error: unknown) => ctx.warn(`deleting the bench ClusterQueue: ${errorMessage(error)}`));
  }
}
