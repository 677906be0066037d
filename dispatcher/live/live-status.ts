/**
 * Wires the watch to what listens to it: the SSE feed, the metrics and, when a
 * backend is configured, the status callbacks. main.ts and the tests start the
 * same thing.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { type Log, noLog } from "../log.ts";
import type { GpuNodeCapacity } from "../status/node-fit.ts";
import { BackendCallbacks } from "./backend-callbacks.ts";
import { FailFast } from "./fail-fast.ts";
import { GpuNodes } from "./gpu-nodes.ts";
import { HistoryKeeper } from "./history-keeper.ts";
import { JobWatch } from "./job-watch.ts";
import { LeaderElection } from "./leader-election.ts";
import type { DispatcherMetrics } from "./metrics.ts";
import { StatusStream } from "./status-stream.ts";
import { TransitionFeed } from "./transition-feed.ts";
import { StoppedWorkloads } from "./workload-deactivation.ts";

export interface LiveStatusProps {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly metrics?: DispatcherMetrics;
  readonly backend?: {
    readonly url: string;
    readonly token?: string;
    readonly minRetryDelayMs?: number;
    readonly maxRetryDelayMs?: number;
    /** This replica's name: with it, only the replica holding the callback Lease delivers. */
    readonly identity?: string;
    readonly leaseSeconds?: number;
    readonly renewSeconds?: number;
  };
  readonly minRestartDelayMs?: number;
  readonly maxRestartDelayMs?: number;
  /** A trainer stuck on its image or configuration longer than this fails the job. @default 600 */
  readonly startupDeadlineSeconds?: number;
  /**
   * GPUs per node of the largest pool of each gpu-type, as the stack declared them: a job
   * asking for more fails at once.
   * @default none declared: only present nodes and the autoscaler tell
   */
  readonly gpuNodeCapacity?: GpuNodeCapacity;
  /**
   * Training Jobs are queued by Kueue: their Workloads are watched and the queue positions of those
   * waiting polled (job-watch.ts).
   * @default false
   */
  readonly kueue?: boolean;
  /** @default 2_000 */
  readonly queuePollIntervalMs?: number;
  /** @default no log */
  readonly log?: Log;
}

export interface LiveStatus {
  readonly watch: JobWatch;
  readonly stream: StatusStream;
  readonly feed: TransitionFeed;
  readonly callbacks?: BackendCallbacks;
  readonly election?: LeaderElection;
  readonly gpuNodes: GpuNodes;
  stop(): Promise<void>;
}

export async function startLiveStatus(props: LiveStatusProps): Promise<LiveStatus> {
  const restartDelays = {
    ...(props.minRestartDelayMs !== undefined && { minRestartDelayMs: props.minRestartDelayMs }),
    ...(props.maxRestartDelayMs !== undefined && { maxRestartDelayMs: props.maxRestartDelayMs }),
  };
  const log = props.log ?? noLog;
  const watch = new JobWatch({
    kubeConfig: props.kubeConfig,
    namespace: props.namespace,
    log,
    ...restartDelays,
    ...(props.kueue !== undefined && { kueue: props.kueue }),
    ...(props.queuePollIntervalMs !== undefined && { queuePollIntervalMs: props.queuePollIntervalMs }),
  });
  const stream = new StatusStream(watch);
  const feed = new TransitionFeed(stream);
  const metrics = props.metrics;
  if (metrics) {
    metrics.track(() => watch.current());
    stream.onEvent((event) => metrics.observe(event));
    watch.onRemoved((job) => metrics.forget(job));
  }
  const callbacks =
    props.backend &&
    new BackendCallbacks({
      kubeConfig: props.kubeConfig,
      namespace: props.namespace,
      backendUrl: props.backend.url,
      ...(props.backend.token !== undefined && { backendToken: props.backend.token }),
      ...(props.backend.minRetryDelayMs !== undefined && { minRetryDelayMs: props.backend.minRetryDelayMs }),
      ...(props.backend.maxRetryDelayMs !== undefined && { maxRetryDelayMs: props.backend.maxRetryDelayMs }),
      ...(props.backend.identity !== undefined && { active: false }),
      observer: {
        delivered: (_jobId, _transition, lagSeconds) => metrics?.callbackDelivered(lagSeconds),
        failed: (jobId, error) => {
          metrics?.callbackFailed();
          log("warn", "status callback failed; retrying", { jobId, error });
        },
      },
    });
  if (callbacks) {
    watch.onUpdate(({ job }) => callbacks.recorded(job));
    stream.onEvent((event) => callbacks.push(event));
    watch.onRemoved((job) => callbacks.forget(job));
  }
  const identity = props.backend?.identity;
  const election =
    callbacks && identity !== undefined
      ? new LeaderElection({
          kubeConfig: props.kubeConfig,
          namespace: props.namespace,
          identity,
          ...(props.backend?.leaseSeconds !== undefined && { leaseSeconds: props.backend.leaseSeconds }),
          ...(props.backend?.renewSeconds !== undefined && { renewSeconds: props.backend.renewSeconds }),
          onChange: (leading) => callbacks.setActive(leading),
        })
      : undefined;
  const gpuNodes = new GpuNodes({ kubeConfig: props.kubeConfig, log, ...restartDelays });
  const failFast = new FailFast({
    kubeConfig: props.kubeConfig,
    namespace: props.namespace,
    watch,
    startupDeadlineSeconds: props.startupDeadlineSeconds ?? 600,
    gpuNodes,
    log,
    ...(props.gpuNodeCapacity !== undefined && { gpuNodeCapacity: props.gpuNodeCapacity }),
  });
  new HistoryKeeper({ kubeConfig: props.kubeConfig, namespace: props.namespace, watch, log });
  // Only Jobs queued by Kueue (queueing on) concern it.
  const stoppedWorkloads = new StoppedWorkloads({ kubeConfig: props.kubeConfig, namespace: props.namespace, watch, log });
  // The nodes first: a job must not be judged against a node list that has not arrived.
  await gpuNodes.start();
  await watch.start();
  election?.start();
  return {
    watch,
    stream,
    feed,
    gpuNodes,
    ...(callbacks && { callbacks }),
    ...(election && { election }),
    async stop() {
      await election?.stop();
      callbacks?.close();
      failFast.stop();
      stoppedWorkloads.stop();
      await Promise.all([watch.stop(), gpuNodes.stop()]);
    },
  };
}
