/**
 * (c) Status propagation: short CPU-only jobs (kwok runs each for 1-5 s) submitted
 * through the dispatcher; for each, the time from the bench's own Job watch first
 * showing the terminal condition to
 *   - the backend callback with status "completed" arriving at the recording backend,
 *   - the SSE "completed" event arriving on GET /v1/events,
 *   - the plan's TrainingMonitor (poll every 10 s) notifying "completed".
 * and, for a change of reason within a phase, for image-pull jobs: from the bench's own Pod
 * watch first showing the trainer waiting with ErrImagePull to the callback and the SSE event
 * with reason ErrImagePull.
 * All instants are taken in this process on one monotonic clock.
 */
import type { PhaseContext } from "../context.ts";
import { DispatcherChild } from "../dispatcher-child.ts";
import { ConditionWatcher, PodReasonWatcher } from "../job-watcher.ts";
import { TrainingMonitor } from "../poller.ts";
import { BENCH_PROJECT_ID, benchRequest, nextJobId, RUN_ID } from "../requests.ts";
import { openEventStream } from "../sse.ts";
import { errorMessage, now, round, type Summary, sleep, summarize } from "../stats.ts";
import { postJob } from "./submit.ts";

export interface PropagationResult {
  readonly namespace: string;
  readonly jobs: number;
  readonly pollIntervalSeconds: number;
  readonly callbackMs: Summary | undefined;
  readonly sseMs: Summary | undefined;
  readonly pollerMs: Summary | undefined;
  /**
   * The poller measured from the Complete condition instead: the plan's status reads status.succeeded, which
   * the Job controller writes with Complete, after SuccessCriteriaMet. This is its polling delay alone.
   */
  readonly pollerFromCompleteMs: Summary | undefined;
  /** How much later the Complete condition itself showed up than the first terminal condition (SuccessCriteriaMet). */
  readonly completeAfterFirstTerminalMs: Summary | undefined;
  readonly terminalConditions: Readonly<Record<string, number>>;
  /** Image-pull jobs: a reason change (starting/ContainerCreating -> starting/ErrImagePull) to the backend and to SSE. */
  readonly reasonJobs: number;
  readonly reasonCallbackMs: Summary | undefined;
  readonly reasonSseMs: Summary | undefined;
  /** Jobs whose figure is missing when the phase gave up waiting. */
  readonly missing: {
    readonly condition: number;
    readonly callback: number;
    readonly sse: number;
    readonly poller: number;
    readonly reasonCallback: number;
    readonly reasonSse: number;
  };
  readonly submitErrors: number;
  readonly pollerReads: number;
}

const DURATIONS = ["1s", "2s", "3s", "4s", "5s"];
const REASON = "ErrImagePull";

export async function propagationPhase(ctx: PhaseContext): Promise<PropagationResult> {
  const { config, signal } = ctx;
  const namespace = await ctx.namespace("bench-status");
  const callbackAt = new Map<number, number>();
  const sseAt = new Map<number, number>();
  const pollAt = new Map<number, number>();
  const reasonCallbackAt = new Map<number, number>();
  const reasonSseAt = new Map<number, number>();
  const jobIds: number[] = [];
  const pullJobIds: number[] = [];
  let submitErrors = 0;
  const watcher = new ConditionWatcher(ctx.kubeConfig, namespace, `bench-run=${RUN_ID}`);
  await watcher.start();
  const pods = new PodReasonWatcher(ctx.kubeConfig, namespace, `bench-run=${RUN_ID},kwok-fate=image-pull`, REASON);
  await pods.start();
  const unsubscribe = ctx.backend.onCallback((callback) => {
    if (callback.body.status === "completed" && !callbackAt.has(callback.jobId)) callbackAt.set(callback.jobId, callback.at);
    if (callback.body.reason === REASON && !reasonCallbackAt.has(callback.jobId)) reasonCallbackAt.set(callback.jobId, callback.at);
  });
  const monitor = new TrainingMonitor(ctx.kubeConfig, namespace, config.pollIntervalSeconds * 1000, (notification) => {
    if (notification.status === "completed") pollAt.set(notification.jobId, notification.at);
  });
  let child: DispatcherChild | undefined;
  let stream: ReturnType<typeof openEventStream> | undefined;
  try {
    child = await DispatcherChild.start({
      kubeconfig: ctx.kubeconfigPath,
      namespace,
      apiToken: ctx.apiToken,
      backendUrl: ctx.backend.url,
    });
    stream = openEventStream(`${child.url}/v1/events?projectId=${BENCH_PROJECT_ID}`, ctx.apiToken, (event) => {
      if (event.data.phase === "completed" && !sseAt.has(event.data.jobId)) sseAt.set(event.data.jobId, event.receivedAt);
      if (event.data.reason === REASON && !reasonSseAt.has(event.data.jobId)) reasonSseAt.set(event.data.jobId, event.receivedAt);
    });
    await Promise.race([stream.connected, sleep(15_000, signal).then(() => Promise.reject(new Error("the SSE stream did not connect")))]);
    monitor.start();

    // Submissions spread over time so completions fall at every point of the poller's cycle.
    for (let index = 0; index < config.statusJobs; index += 1) {
      signal.throwIfAborted();
      const jobId = nextJobId();
      try {
        await postJob(
          child.url,
          ctx.apiToken,
          benchRequest(jobId, { "kwok-run-duration": DURATIONS[index % DURATIONS.length] as string }),
          signal,
        );
        jobIds.push(jobId);
        monitor.add(jobId);
      } catch (error) {
        if (signal.aborted) throw error;
        submitErrors += 1;
        ctx.warn(`propagation: submitting job ${jobId} failed: ${errorMessage(error)}`);
      }
      await sleep(200, signal);
    }
    // A reason change within a phase: image pulls that fail (kwok-fate=image-pull), a fifth as many as the jobs above.
    for (let index = 0; index < Math.max(1, Math.round(config.statusJobs / 5)); index += 1) {
      signal.throwIfAborted();
      const jobId = nextJobId();
      try {
        await postJob(child.url, ctx.apiToken, benchRequest(jobId, { "kwok-fate": "image-pull" }), signal);
        pullJobIds.push(jobId);
      } catch (error) {
        if (signal.aborted) throw error;
        submitErrors += 1;
        ctx.warn(`propagation: submitting image-pull job ${jobId} failed: ${errorMessage(error)}`);
      }
      await sleep(200, signal);
    }
    ctx.log(`propagation: ${jobIds.length} + ${pullJobIds.length} jobs submitted; waiting for every consumer to report them`);

    const waitMs = 60_000 + 2 * config.pollIntervalSeconds * 1000;
    const deadline = now() + waitMs;
    let lastLog = now();
    const complete = () =>
      jobIds.every((id) => watcher.sightings.has(id) && callbackAt.has(id) && sseAt.has(id) && pollAt.has(id)) &&
      pullJobIds.every((id) => pods.sightings.has(id) && reasonCallbackAt.has(id) && reasonSseAt.has(id));
    while (!complete() && now() < deadline) {
      if (watcher.error) throw new Error(watcher.error);
      if (pods.error) throw new Error(pods.error);
      await sleep(250, signal);
      if (now() - lastLog > 5000) {
        lastLog = now();
        ctx.log(
          `propagation: conditions ${watcher.sightings.size}, callbacks ${callbackAt.size}, sse ${sseAt.size}, poller ${pollAt.size} of ${jobIds.length}`,
        );
      }
    }
    if (!complete()) ctx.warn(`propagation: gave up after ${waitMs / 1000} s with some consumers not reporting every job (see missing)`);
  } finally {
    unsubscribe();
    stream?.close();
    watcher.stop();
    pods.stop();
    await monitor.stop();
    await child?.stop();
  }
  await ctx.dropNamespace(namespace);

  const latencies = (arrivals: Map<number, number>) =>
    jobIds.flatMap((id) => {
      const sighting = watcher.sightings.get(id);
      const at = arrivals.get(id);
      return sighting && at !== undefined ? [at - sighting.terminalAt] : [];
    });
  const terminalConditions: Record<string, number> = {};
  for (const id of jobIds) {
    const condition = watcher.sightings.get(id)?.condition;
    if (condition) terminalConditions[condition] = (terminalConditions[condition] ?? 0) + 1;
  }
  const missing = (arrivals: Map<number, number> | Map<number, unknown>, ids = jobIds) => ids.filter((id) => !arrivals.has(id)).length;
  const reasonLatencies = (arrivals: Map<number, number>) =>
    pullJobIds.flatMap((id) => {
      const sighting = pods.sightings.get(id);
      const at = arrivals.get(id);
      return sighting !== undefined && at !== undefined ? [at - sighting] : [];
    });
  return {
    namespace,
    jobs: jobIds.length,
    pollIntervalSeconds: config.pollIntervalSeconds,
    callbackMs: summarize(latencies(callbackAt)),
    sseMs: summarize(latencies(sseAt)),
    pollerMs: summarize(latencies(pollAt)),
    pollerFromCompleteMs: summarize(
      jobIds.flatMap((id) => {
        const completeAt = watcher.sightings.get(id)?.completeAt;
        const at = pollAt.get(id);
        return completeAt !== undefined && at !== undefined ? [at - completeAt] : [];
      }),
    ),
    completeAfterFirstTerminalMs: summarize(
      jobIds.flatMap((id) => {
        const sighting = watcher.sightings.get(id);
        return sighting?.completeAt !== undefined ? [sighting.completeAt - sighting.terminalAt] : [];
      }),
    ),
    terminalConditions,
    reasonJobs: pullJobIds.length,
    reasonCallbackMs: summarize(reasonLatencies(reasonCallbackAt)),
    reasonSseMs: summarize(reasonLatencies(reasonSseAt)),
    missing: {
      condition: missing(watcher.sightings),
      callback: missing(callbackAt),
      sse: missing(sseAt),
      poller: missing(pollAt),
      reasonCallback: missing(reasonCallbackAt, pullJobIds),
      reasonSse: missing(reasonSseAt, pullJobIds),
    },
    submitErrors,
    pollerReads: round(monitor.reads, 0),
  };
}
