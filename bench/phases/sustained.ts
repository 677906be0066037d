/**
 * (b) Sustained submissions: `concurrency` clients POST /v1/jobs back to back for
 * `seconds`; submissions per second, errors, latency under load, and a check that
 * every acknowledged job is stored.
 */
import type { PhaseContext } from "../context.ts";
import { DispatcherChild } from "../dispatcher-child.ts";
import { benchRequest, nextJobId } from "../requests.ts";
import { errorMessage, now, round, type Summary, summarize } from "../stats.ts";
import { countBenchJobs } from "./fill.ts";
import { postJob } from "./submit.ts";

export interface SustainedResult {
  readonly namespace: string;
  readonly seconds: number;
  readonly concurrency: number;
  readonly accepted: number;
  readonly errors: number;
  readonly firstErrors: readonly string[];
  readonly perSecond: number;
  /** Accepted submissions in each whole second of the run: min and max. */
  readonly perSecondRange: { readonly min: number; readonly max: number };
  readonly latencyMs: Summary | undefined;
  /** Jobs found in the namespace afterwards (should equal accepted). */
  readonly stored: number;
}

export async function sustainedPhase(ctx: PhaseContext): Promise<SustainedResult> {
  const { config, signal } = ctx;
  const namespace = await ctx.namespace("bench-sustained", { noPods: true });
  const child = await DispatcherChild.start({ kubeconfig: ctx.kubeconfigPath, namespace, apiToken: ctx.apiToken });
  const latencies: number[] = [];
  const acceptedAt: number[] = [];
  const firstErrors: string[] = [];
  let errors = 0;
  let elapsed = 0;
  try {
    const started = now();
    const deadline = started + config.sustainedSeconds * 1000;
    const progress = setInterval(
      () => ctx.log(`sustained: ${acceptedAt.length} accepted, ${errors} errors, ${Math.round((now() - started) / 1000)} s`),
      5000,
    );
    const worker = async () => {
      while (now() < deadline) {
        signal.throwIfAborted();
        try {
          latencies.push(await postJob(child.url, ctx.apiToken, benchRequest(nextJobId()), signal));
          acceptedAt.push(now() - started);
        } catch (error) {
          if (signal.aborted) throw error;
          errors += 1;
          if (firstErrors.length < 5) firstErrors.push(errorMessage(error));
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: config.sustainedConcurrency }, worker));
    } finally {
      clearInterval(progress);
    }
    elapsed = (now() - started) / 1000;
  } finally {
    await child.stop();
  }
  const stored = await countBenchJobs(ctx, namespace);
  if (stored !== acceptedAt.length) ctx.warn(`sustained: ${acceptedAt.length} submissions were accepted but ${stored} Jobs are stored`);
  const seconds = Math.floor(elapsed);
  const buckets = Array.from({ length: Math.max(seconds, 1) }, () => 0);
  for (const at of acceptedAt) {
    const second = Math.floor(at / 1000);
    if (second < buckets.length) buckets[second] = (buckets[second] ?? 0) + 1;
  }
  await ctx.dropNamespace(namespace);
  return {
    namespace,
    seconds: round(elapsed, 1),
    concurrency: config.sustainedConcurrency,
    accepted: acceptedAt.length,
    errors,
    firstErrors,
    perSecond: round(acceptedAt.length / elapsed, 1),
    perSecondRange: { min: Math.min(...buckets), max: Math.max(...buckets) },
    latencyMs: summarize(latencies),
    stored,
  };
}
