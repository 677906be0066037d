/**
 * The dispatcher as its own process, for the benchmark: the same pieces main.ts
 * starts (KubernetesExecutor, live status with optional backend callbacks,
 * metrics, the HTTP server), so its RSS is the dispatcher's alone. Started with
 * fork() by dispatcher-child.ts; talks over the IPC channel:
 *
 *   child -> parent  { type: "ready", url }            once listening
 *   parent -> child  { type: "stats", id }              -> { type: "stats", id, stats: ChildStats }
 *   parent -> child  { type: "stop" }                   stops everything and exits 0
 *
 * Configuration: one JSON argument (DispatcherProcessOptions).
 */
import { readdirSync } from "node:fs";
import { KubeConfig } from "@kubernetes/client-node";
import { platformSettings } from "../charts-ts/settings.ts";
import { KubernetesExecutor } from "../dispatcher/executors/kubernetes-executor.ts";
import { buildServer } from "../dispatcher/http/server.ts";
import { startLiveStatus } from "../dispatcher/live/live-status.ts";
import { DispatcherMetrics } from "../dispatcher/live/metrics.ts";

export interface DispatcherProcessOptions {
  readonly kubeconfig: string;
  readonly namespace: string;
  /** Jobs queued by Kueue (TRAINING_QUEUEING=true); the namespace needs the project's LocalQueue. */
  readonly queueing?: boolean;
  readonly apiToken: string;
  /** The backend's base URL for status callbacks; none when absent. */
  readonly backendUrl?: string;
  readonly backendToken?: string;
}

export interface ChildStats {
  readonly memory: NodeJS.MemoryUsage;
  /** RSS right after a full garbage collection (when the child runs with --expose-gc). */
  readonly rssAfterGc?: number;
  readonly heapUsedAfterGc?: number;
  readonly heapTotalAfterGc?: number;
  /** Jobs the watch holds a derived status for. */
  readonly tracked: number;
  /** Jobs with transitions the backend has not acknowledged yet. */
  readonly pendingCallbacks: number;
  readonly watchRestarts: number;
  /** Open file descriptors (sockets included), where /proc tells. */
  readonly openFds?: number;
}

function openFds(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return undefined;
  }
}

export type ParentMessage = { readonly type: "stats"; readonly id: number; readonly gc?: boolean } | { readonly type: "stop" };
export type ChildMessage =
  | { readonly type: "ready"; readonly url: string }
  | { readonly type: "stats"; readonly id: number; readonly stats: ChildStats };

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? "{}") as DispatcherProcessOptions;
  if (!process.send) throw new Error("dispatcher-process.ts must be started with an IPC channel (fork)");
  const send = (message: ChildMessage) => process.send?.(message);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(options.kubeconfig);
  const platform = platformSettings({ namespace: options.namespace, queueing: options.queueing });
  const metrics = new DispatcherMetrics();
  const live = await startLiveStatus({
    kubeConfig,
    namespace: platform.namespace,
    metrics,
    ...(options.backendUrl !== undefined && {
      backend: { url: options.backendUrl, ...(options.backendToken !== undefined && { token: options.backendToken }) },
    }),
  });
  const server = buildServer({
    apiToken: options.apiToken,
    bodyLimitBytes: 256 * 1024,
    defaultExecutor: "kubernetes",
    executors: { kubernetes: new KubernetesExecutor({ kubeConfig, platform }) },
    feed: live.feed,
    metrics,
  });
  const url = await server.listen({ port: 0, host: "127.0.0.1" });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await Promise.allSettled([live.stop(), server.close()]);
    process.exit(0);
  };
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on("message", (message: ParentMessage) => {
    if (message.type === "stop") void stop();
    if (message.type === "stats") {
      const memory = process.memoryUsage();
      const fds = openFds();
      let afterGc: NodeJS.MemoryUsage | undefined;
      if (message.gc && gc) {
        gc();
        afterGc = process.memoryUsage();
      }
      send({
        type: "stats",
        id: message.id,
        stats: {
          memory,
          ...(afterGc && { rssAfterGc: afterGc.rss, heapUsedAfterGc: afterGc.heapUsed, heapTotalAfterGc: afterGc.heapTotal }),
          tracked: live.watch.current().length,
          pendingCallbacks: live.callbacks?.pending() ?? 0,
          watchRestarts: live.watch.restarts,
          ...(fds !== undefined && { openFds: fds }),
        },
      });
    }
  });
  // The bench went away: do not linger.
  process.on("disconnect", () => void stop());
  send({ type: "ready", url });
}

await main();
