/**
 * Runs training jobs as Kubernetes Jobs rendered by the TrainingJob construct.
 * Holds no state: every answer is derived from the API server's objects.
 */
import { PassThrough } from "node:stream";
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  Log,
  PatchStrategy,
  setHeaderOptions,
  type V1Job,
  type V1Pod,
} from "@kubernetes/client-node";
import { KUEUE_API_VERSION, localQueueName, queueProjectOf } from "../../charts-ts/kueue-contract.ts";
import { ANNOTATION, JOB_NAME_LABEL, LABEL, TRAINING_JOB_APP, trainingJobName } from "../../charts-ts/labels.ts";
import type { TrainingRequest } from "../../charts-ts/request.ts";
import type { PlatformSettings } from "../../charts-ts/settings.ts";
import { TRAINER_CONTAINER } from "../../charts-ts/training-job.ts";
import { type Manifest, renderTrainingJob } from "../../charts-ts/training-job-chart.ts";
import { ApiError, apiServerFailure, apiServerMessage, isMissingNamespace, missingNamespaceMessage } from "../api-error.ts";
import { dryRunPod, jobEventsByName, jobEventsOf, PodAdmission } from "../live/admission.ts";
import { jobIdOf } from "../live/job-watch.ts";
import { kueueObjectsOf, listWorkloads, type PageReads, pageReads } from "../live/kueue-api.ts";
import { WorkloadDeactivation } from "../live/workload-deactivation.ts";
import { attemptLog } from "../status/attempt-log.ts";
import { deriveJobStatus, historyOf } from "../status/job-status.ts";
import { type KueueObjects, queuedByKueue } from "../status/kueue-workload.ts";
import { type JobStatus, TERMINAL_PHASES } from "../status/status-model.ts";
import type {
  DryRunResult,
  DryRunVerdict,
  JobExecutor,
  JobPage,
  ListFilter,
  LogRequest,
  LogResult,
  Readiness,
  SubmitResult,
} from "./job-executor.ts";
import { assertSameRequest, requestConflicts } from "./request-diff.ts";

function isApiError(error: unknown, code: number): boolean {
  return error instanceof ApiException && error.code === code;
}

const [KUEUE_GROUP, KUEUE_VERSION] = KUEUE_API_VERSION.split("/") as [string, string];
/**
 * How long a stop waits for Kueue to create a new Job's Workload (it does within moments): the
 * Workload is what has to be deactivated. Past it the stop is recorded anyway, and the live
 * status (live/workload-deactivation.ts) deactivates the Workload once it appears.
 */
const STOP_WORKLOAD_WAIT_MS = 5_000;

export interface KubernetesExecutorProps {
  readonly kubeConfig: KubeConfig;
  readonly platform: PlatformSettings;
}

export class KubernetesExecutor implements JobExecutor {
  readonly kind = "kubernetes" as const;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly log: Log;
  private readonly platform: PlatformSettings;
  private readonly admission: PodAdmission;
  private readonly kubeConfig: KubeConfig;
  private readonly custom: CustomObjectsApi;
  private readonly workloads: WorkloadDeactivation;

  constructor(props: KubernetesExecutorProps) {
    this.kubeConfig = props.kubeConfig;
    this.batch = props.kubeConfig.makeApiClient(BatchV1Api);
    this.core = props.kubeConfig.makeApiClient(CoreV1Api);
    this.custom = props.kubeConfig.makeApiClient(CustomObjectsApi);
    this.workloads = new WorkloadDeactivation(props.kubeConfig, props.platform.namespace);
    this.log = new Log(props.kubeConfig);
    this.platform = props.platform;
    this.admission = new PodAdmission(this.core);
  }

  private get namespace(): string {
    return this.platform.namespace;
  }

  private failure(error: unknown, field?: string): ApiError {
    return apiServerFailure(error, this.namespace, field);
  }

  render(request: TrainingRequest): Manifest {
    return renderTrainingJob(request, this.platform);
  }

  async submit(request: TrainingRequest): Promise<SubmitResult> {
    await this.assertQueue(request);
    const manifest = this.render(request) as V1Job;
    await this.assertAdmissible(manifest);
    try {
      const job = await this.batch.createNamespacedJob({
        namespace: this.namespace,
        body: manifest,
        fieldValidation: "Strict",
      });
      return { created: true, status: deriveJobStatus({ job, pods: [] }, request.jobId) };
    } catch (error) {
      if (!isApiError(error, 409)) throw this.failure(error);
    }
    const existing = await this.readJob(request.jobId);
    if (!existing) throw new ApiError(409, "conflict", `job ${request.jobId} is being deleted; submit again once it is gone`);
    const stored = existing.metadata?.annotations?.[ANNOTATION.request];
    const differing = stored === undefined ? ["(the existing Job was not created by the dispatcher)"] : requestConflicts(stored, request);
    assertSameRequest(request.jobId, differing);
    return { created: false, status: await this.statusOf(existing, request.jobId) };
  }

  /** The manifest and the API server's verdict on it, without creating anything. */
  async dryRun(request: TrainingRequest): Promise<DryRunResult> {
    await this.assertQueue(request);
    const manifest = this.render(request);
    return { manifest, verdict: await this.verdictOn(manifest) };
  }

  /** Server-side dry run of any manifest: admission, validation and quota, nothing persisted. */
  async verdictOn(manifest: Manifest): Promise<DryRunVerdict> {
    try {
      await this.batch.createNamespacedJob({
        namespace: this.namespace,
        body: manifest as V1Job,
        dryRun: "All",
        fieldValidation: "Strict",
      });
      return await this.podVerdict(manifest as V1Job);
    } catch (error) {
      if (error instanceof ApiException && error.code >= 400 && error.code < 500 && !isMissingNamespace(error, this.namespace)) {
        return { accepted: false, statusCode: error.code, message: apiServerMessage(error) };
      }
      throw this.failure(error);
    }
  }

  /** The pod's dry run (live/admission.ts): the Job's own dry run does not judge its pods. */
  private async podVerdict(job: V1Job): Promise<DryRunVerdict> {
    try {
      const { field: _field, ...verdict } = await dryRunPod(this.core, this.namespace, job);
      return verdict;
    } catch (error) {
      throw this.failure(error);
    }
  }

  /**
   * With queueing on, a job waits in its project's LocalQueue: a request without a project, or
   * for a project the stack gave no queue, is refused before anything is created, naming the
   * queues there are. Kueue would otherwise hold the Job forever as inadmissible.
   */
  private async assertQueue(request: TrainingRequest): Promise<void> {
    if (!this.platform.queueing) return;
    const queue = request.projectId === undefined ? undefined : localQueueName(queueProjectOf(request.projectId));
    const queueOf = { group: KUEUE_GROUP, version: KUEUE_VERSION, namespace: this.namespace, plural: "localqueues" };
    try {
      if (queue !== undefined) {
        await this.custom.getNamespacedCustomObject({ ...queueOf, name: queue });
        return;
      }
    } catch (error) {
      if (!isApiError(error, 404)) throw this.failure(error);
    }
    let names: string[];
    try {
      const list = (await this.custom.listNamespacedCustomObject(queueOf)) as { items: { metadata: { name: string } }[] };
      names = list.items.map((item) => item.metadata.name).sort();
    } catch (error) {
      throw this.failure(error);
    }
    const there = `queues in namespace ${this.namespace}: ${names.length > 0 ? names.join(", ") : "none"}`;
    throw new ApiError(
      400,
      "invalid_request",
      queue === undefined
        ? `projectId: required while queueing is on: a job waits in its project's queue (LocalQueue project-<projectId>); ${there}`
        : `projectId: project ${request.projectId} has no queue (no LocalQueue ${queue}); ${there}`,
      "projectId",
    );
  }

  /** A pod the namespace will never admit is refused before anything is created. */
  private async assertAdmissible(job: V1Job): Promise<void> {
    let verdict: Awaited<ReturnType<typeof dryRunPod>>;
    try {
      verdict = await this.admission.verdict(this.namespace, { ...job, metadata: { ...job.metadata, namespace: this.namespace } });
    } catch (error) {
      throw this.failure(error);
    }
    if (!verdict.accepted)
      throw new ApiError(400, "invalid_request", `the namespace would refuse the trainer's pod: ${verdict.message}`, verdict.field);
  }

  async get(jobId: number): Promise<JobStatus | undefined> {
    const job = await this.readJob(jobId);
    return job && this.statusOf(job, jobId);
  }

  async list(filter: ListFilter): Promise<JobPage> {
    const selector = [
      `${LABEL.app}=${TRAINING_JOB_APP}`,
      ...(filter.projectId !== undefined ? [`${LABEL.projectId}=${filter.projectId}`] : []),
      ...(filter.framework !== undefined ? [`${LABEL.framework}=${filter.framework}`] : []),
    ].join(",");
    try {
      const jobs = await this.batch.listNamespacedJob({
        namespace: this.namespace,
        labelSelector: selector,
        limit: filter.limit,
        ...(filter.pageToken !== undefined && { _continue: filter.pageToken }),
      });
      // One pod list for the whole page, not one per job.
      const [pods, jobEvents] = await Promise.all([
        this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: `${LABEL.app}=${TRAINING_JOB_APP}` }),
        jobEventsByName(this.core, this.namespace),
      ]);
      const podsByJob = Map.groupBy(pods.items, (pod) => pod.metadata?.labels?.[JOB_NAME_LABEL] ?? "");
      // One Workload list for the page's Kueue jobs, and the visibility API once per LocalQueue with a waiting job.
      const queued = jobs.items.filter(queuedByKueue);
      const page = pageReads(this.kubeConfig, this.namespace, queued.length > 0 ? await listWorkloads(this.custom, this.namespace) : []);
      const kueue = new Map(await Promise.all(queued.map(async (job) => [job.metadata?.name, await this.kueueOf(job, page)] as const)));
      const statuses = jobs.items.map((job) => {
        const name = job.metadata?.name ?? "";
        const objects = { job, pods: podsByJob.get(name) ?? [], events: jobEvents.get(name) ?? [] };
        const ofKueue = kueue.get(name);
        return deriveJobStatus(ofKueue ? { ...objects, kueue: ofKueue } : objects, jobIdOf(job));
      });
      const next = jobs.metadata?._continue;
      return {
        jobs: filter.phase === undefined ? statuses : statuses.filter((status) => status.phase === filter.phase),
        ...(next ? { nextPageToken: next } : {}),
      };
    } catch (error) {
      if (isApiError(error, 410))
        throw new ApiError(400, "invalid_request", "pageToken has expired; list again from the start", "pageToken");
      throw this.failure(error, filter.pageToken === undefined ? undefined : "pageToken");
    }
  }

  async stop(jobId: number): Promise<JobStatus | undefined> {
    const job = await this.readJob(jobId);
    if (!job) return undefined;
    const status = await this.statusOf(job, jobId);
    if (status.phase === "stopped") {
      // A stop that came before Kueue made the Workload is finished by the next one (and by the live status).
      if (queuedByKueue(job) && job.metadata?.annotations?.[ANNOTATION.workloadDeactivated] === undefined)
        await this.deactivateWorkload(job, 0);
      return status;
    }
    if (TERMINAL_PHASES.has(status.phase))
      throw new ApiError(409, "conflict", `job ${jobId} has already ${status.phase}; there is nothing to stop`);
    // Kueue owns a queued Job's suspend: the Workload goes inactive first, and Kueue suspends the Job.
    // Suspending it beside Kueue would race it: Kueue unsuspends a Job whose Workload is still admitted.
    const kueueStops = queuedByKueue(job) && (await this.deactivateWorkload(job, STOP_WORKLOAD_WAIT_MS));
    // Suspending makes the Job controller delete the pods gracefully (SIGTERM, then the grace period for a
    // checkpoint) without counting a failure, and keeps the Job, so the job stays queryable as `stopped`.
    const now = new Date().toISOString();
    const annotations = {
      [ANNOTATION.stoppedAt]: now,
      [ANNOTATION.history]: JSON.stringify(historyOf(status)),
      ...(kueueStops && { [ANNOTATION.workloadDeactivated]: now }),
    };
    const patch = { metadata: { annotations }, ...(!kueueStops && { spec: { suspend: true } }) };
    try {
      const patched = await this.batch.patchNamespacedJob(
        { name: trainingJobName(jobId), namespace: this.namespace, body: patch },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      return this.statusOf(patched, jobId);
    } catch (error) {
      throw this.failure(error);
    }
  }

  private async deactivateWorkload(job: V1Job, waitMs: number): Promise<boolean> {
    try {
      return await this.workloads.deactivate(job, waitMs);
    } catch (error) {
      throw this.failure(error);
    }
  }

  async logs(jobId: number, request: LogRequest): Promise<LogResult> {
    const job = await this.readJob(jobId);
    if (!job) return { kind: "unknown-job" };
    const pods = await this.podsOf(job);
    const status = await this.statusOf(job, jobId, pods);
    // Attempts as GET counts them: the record keeps those whose pods are gone.
    const target = attemptLog(status, pods, request.attempt);
    if (target.kind !== "pod") return target;
    const { pod, attempt } = target;
    const state = pod.status?.containerStatuses?.find((c) => c.name === TRAINER_CONTAINER)?.state;
    if (!(state?.running || state?.terminated)) return { kind: "no-output-yet", status };
    const stream = new PassThrough();
    // Log.log pipes the API server's response into `stream` with no error listener of its own: the
    // abort below (a reader hanging up on a followed log) or a broken transfer would otherwise be an
    // unhandled 'error' event, which ends the process.
    stream.on("pipe", (source) => source.on("error", () => stream.destroy()));
    // A finished attempt's log is complete: following it would hold the connection open for nothing.
    const follow = request.follow && state.running !== undefined;
    const options = { follow, ...(request.tailLines !== undefined && { tailLines: request.tailLines }) };
    try {
      const abort = await this.log.log(this.namespace, pod.metadata?.name ?? "", TRAINER_CONTAINER, stream, options);
      if (stream.destroyed) abort.abort();
      stream.on("close", () => abort.abort());
    } catch (error) {
      throw this.failure(error);
    }
    return { kind: "output", attempt, stream };
  }

  /** Ready when the training namespace exists: the API server answers and the platform chart is applied. */
  async ready(): Promise<Readiness> {
    try {
      await this.core.readNamespace({ name: this.namespace });
      return { ready: true };
    } catch (error) {
      if (isApiError(error, 404)) return { ready: false, reason: missingNamespaceMessage(this.namespace) };
      const reason = isApiError(error, 403)
        ? `the dispatcher may not read its namespace "${this.namespace}": apply the platform chart, whose ClusterRole grants it`
        : "the Kubernetes API is unavailable";
      return { ready: false, reason: `${reason} (${apiServerMessage(error)})` };
    }
  }

  private async readJob(jobId: number): Promise<V1Job | undefined> {
    try {
      return await this.batch.readNamespacedJob({ name: trainingJobName(jobId), namespace: this.namespace });
    } catch (error) {
      if (isApiError(error, 404)) return undefined;
      throw this.failure(error);
    }
  }

  private async podsOf(job: V1Job): Promise<V1Pod[]> {
    try {
      const pods = await this.core.listNamespacedPod({
        namespace: this.namespace,
        labelSelector: `${JOB_NAME_LABEL}=${job.metadata?.name}`,
      });
      return pods.items;
    } catch (error) {
      throw this.failure(error);
    }
  }

  private async statusOf(job: V1Job, jobId: number, known?: readonly V1Pod[]): Promise<JobStatus> {
    const pods = known ?? (await this.podsOf(job));
    // Scheduling events matter only while a pod waits for a node.
    const waiting = pods.filter((pod) => pod.status?.phase === "Pending");
    try {
      const [jobEvents, ...events] = await Promise.all([
        jobEventsOf(this.core, this.namespace, job),
        ...waiting.map(
          async (pod) =>
            (
              await this.core.listNamespacedEvent({
                namespace: this.namespace,
                fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${pod.metadata?.name}`,
              })
            ).items,
        ),
      ]);
      const kueue = queuedByKueue(job) ? await this.kueueOf(job) : undefined;
      return deriveJobStatus({ job, pods: [...pods], events: [...jobEvents, ...events.flat()], ...(kueue && { kueue }) }, jobId);
    } catch (error) {
      throw this.failure(error);
    }
  }

  /** The Job's Workload, queue position and preemptor (live/kueue-api.ts). */
  private kueueOf(job: V1Job, page?: PageReads): Promise<KueueObjects> {
    return kueueObjectsOf(this.kubeConfig, this.custom, { ...job, metadata: { namespace: this.namespace, ...job.metadata } }, page);
  }
}
