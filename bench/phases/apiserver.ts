/**
 * (d) API-server load while tracking N active jobs (suspended, so nothing changes):
 * apiserver_request_total from the API server's own /metrics, summed over a window
 *   - with neither tracker running (baseline: controllers, kwok's node heartbeats),
 *   - with the dispatcher (its own process: watches + status callbacks to a backend),
 *   - with the plan's TrainingMonitor polling every job every 10 s,
 * each reported net of the baseline rate.
 */

import { type ApiServerSample, type RequestDelta, requestDelta, scrapeApiServer, untilQuiet } from "../cluster.ts";
import type { PhaseContext } from "../context.ts";
import { DispatcherChild } from "../dispatcher-child.ts";
import { TrainingMonitor } from "../poller.ts";
import { now, round, sleep, until } from "../stats.ts";
import { fillSuspended, untilSuspended } from "./fill.ts";

export interface Window {
  readonly seconds: number;
  readonly requests: number;
  readonly perSecond: number;
  /** Requests on jobs, pods and events only. */
  readonly trainingPerSecond: number;
  /** perSecond minus the baseline's. */
  readonly netPerSecond: number;
  readonly netTrainingPerSecond: number;
  /** Open long-running requests (watches) on jobs/pods/events at the window's end, all clients of the API server. */
  readonly openWatches: Readonly<Record<string, number>>;
  /** openWatches minus the baseline's: the tracker's own watches. */
  readonly addedWatches: Readonly<Record<string, number>>;
  /** Every request series that moved in the window, largest first. */
  readonly breakdown: readonly { readonly key: string; readonly count: number }[];
}

export interface ApiServerResult {
  readonly namespace: string;
  readonly trackedJobs: number;
  readonly fill: { readonly seconds: number; readonly perSecond: number };
  readonly windowSeconds: number;
  readonly baseline: Window;
  readonly dispatcher: Window & {
    /** Requests from starting the process until it tracked every job and the backend acknowledged them. */
    readonly startup: { readonly seconds: number; readonly requests: number; readonly trainingRequests: number };
    readonly tracked: number;
  };
  readonly poller: Window & { readonly reads: number; readonly passes: number; readonly readErrors: number };
}

function watchDifference(counts: Readonly<Record<string, number>>, base: Readonly<Record<string, number>>): Record<string, number> {
  const keys = new Set([...Object.keys(counts), ...Object.keys(base)]);
  return Object.fromEntries(
    [...keys].map((key) => [key, (counts[key] ?? 0) - (base[key] ?? 0)] as const).filter(([, count]) => count !== 0),
  );
}

function window(delta: RequestDelta, baseline?: Window): Window {
  const perSecond = delta.total / delta.seconds;
  const trainingPerSecond = delta.trainingResources / delta.seconds;
  return {
    seconds: round(delta.seconds, 1),
    requests: delta.total,
    perSecond: round(perSecond, 2),
    trainingPerSecond: round(trainingPerSecond, 2),
    netPerSecond: round(baseline ? perSecond - baseline.perSecond : 0, 2),
    netTrainingPerSecond: round(baseline ? trainingPerSecond - baseline.trainingPerSecond : 0, 2),
    openWatches: delta.openWatches,
    addedWatches: baseline ? watchDifference(delta.openWatches, baseline.openWatches) : {},
    breakdown: delta.breakdown,
  };
}

async function measure(ctx: PhaseContext, what: string): Promise<RequestDelta> {
  ctx.log(`apiserver: counting requests for ${ctx.config.windowSeconds} s (${what})`);
  const before: ApiServerSample = await scrapeApiServer(ctx.kubeConfig);
  await sleep(ctx.config.windowSeconds * 1000, ctx.signal);
  return requestDelta(before, await scrapeApiServer(ctx.kubeConfig));
}

export async function apiServerPhase(ctx: PhaseContext): Promise<ApiServerResult> {
  const { config } = ctx;
  const namespace = await ctx.namespace("bench-track");
  ctx.log(`apiserver: creating ${config.trackJobs} suspended Jobs in ${namespace}`);
  const fill = await fillSuspended(ctx, namespace, config.trackJobs, (created) => ctx.log(`apiserver: ${created} created`));
  await untilSuspended(ctx, namespace, config.trackJobs, 300_000);
  await untilQuiet(ctx.kubeConfig, 300_000, ctx.log, ctx.signal);

  const baseline = window(await measure(ctx, "baseline: neither tracker running"));

  const spawned = await scrapeApiServer(ctx.kubeConfig);
  const startedAt = now();
  const child = await DispatcherChild.start({
    kubeconfig: ctx.kubeconfigPath,
    namespace,
    apiToken: ctx.apiToken,
    backendUrl: ctx.backend.url,
  });
  let dispatcher: ApiServerResult["dispatcher"];
  try {
    const settled = await until(
      `the dispatcher to track ${config.trackJobs} jobs with every callback acknowledged`,
      async () => {
        const stats = await child.stats();
        return stats.tracked >= config.trackJobs && stats.pendingCallbacks === 0 ? stats : undefined;
      },
      180_000,
      ctx.signal,
      500,
    );
    const startup = requestDelta(spawned, await scrapeApiServer(ctx.kubeConfig));
    const startupSeconds = (now() - startedAt) / 1000;
    await sleep(2000, ctx.signal);
    dispatcher = {
      ...window(await measure(ctx, "dispatcher tracking"), baseline),
      startup: { seconds: round(startupSeconds, 1), requests: startup.total, trainingRequests: startup.trainingResources },
      tracked: settled.tracked,
    };
  } finally {
    await child.stop();
  }
  await untilQuiet(ctx.kubeConfig, 120_000, ctx.log, ctx.signal);

  const monitor = new TrainingMonitor(ctx.kubeConfig, namespace, config.pollIntervalSeconds * 1000, () => undefined);
  for (const jobId of fill.jobIds) monitor.add(jobId);
  let polled: Window;
  monitor.start();
  try {
    polled = window(await measure(ctx, "TrainingMonitor polling"), baseline);
  } finally {
    await monitor.stop();
  }
  if (monitor.readErrors > 0) ctx.warn(`apiserver: the poller's reads failed ${monitor.readErrors} times; last: ${monitor.lastError}`);
  await ctx.dropNamespace(namespace);
  return {
    namespace,
    trackedJobs: config.trackJobs,
    fill: { seconds: fill.seconds, perSecond: fill.perSecond },
    windowSeconds: config.windowSeconds,
    baseline,
    dispatcher,
    poller: { ...polled, reads: monitor.reads, passes: monitor.passes, readErrors: monitor.readErrors },
  };
}
