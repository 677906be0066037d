/**
 * (a) Submit latency: POST /v1/jobs to a listening dispatcher (its own process)
 * against a bare client-node createNamespacedJob of the same rendered manifest,
 * interleaved one at a time (alternating which goes first) in one run. The
 * namespace allows no pods, so only the Job write is measured, not pod churn.
 */
import type { PhaseContext } from "../context.ts";
import { DispatcherChild } from "../dispatcher-child.ts";
import { bareCreator, benchManifest, benchRequest, nextJobId } from "../requests.ts";
import { errorMessage, now, round, type Summary, summarize } from "../stats.ts";

export interface SubmitResult {
  readonly namespace: string;
  readonly samplesPerPath: number;
  readonly warmupPerPath: number;
  readonly dispatcherMs: Summary | undefined;
  readonly bareMs: Summary | undefined;
  /** dispatcher p50 / bare p50: the target is at most 1.5. */
  readonly p50Ratio: number | undefined;
  readonly p99Ratio: number | undefined;
  readonly errors: { readonly dispatcher: number; readonly bare: number; readonly first: readonly string[] };
}

/** One POST /v1/jobs; resolves with the milliseconds until the whole answer was read. */
export async function postJob(url: string, token: string, body: unknown, signal?: AbortSignal): Promise<number> {
  const started = now();
  const response = await fetch(`${url}/v1/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(signal && { signal }),
  });
  const text = await response.text();
  const elapsed = now() - started;
  if (response.status !== 201) throw new Error(`POST /v1/jobs answered ${response.status}: ${text.slice(0, 300)}`);
  return elapsed;
}

export async function submitPhase(ctx: PhaseContext): Promise<SubmitResult> {
  const { config, signal } = ctx;
  const namespace = await ctx.namespace("bench-submit", { noPods: true });
  const child = await DispatcherChild.start({ kubeconfig: ctx.kubeconfigPath, namespace, apiToken: ctx.apiToken });
  const create = bareCreator(ctx.kubeConfig, namespace);
  const dispatcher: number[] = [];
  const bare: number[] = [];
  const errors = { dispatcher: 0, bare: 0, first: [] as string[] };
  const failed = (path: "dispatcher" | "bare", error: unknown) => {
    errors[path] += 1;
    if (errors.first.length < 5) errors.first.push(`${path}: ${errorMessage(error)}`);
  };
  try {
    const total = config.submitWarmup + config.submitSamples;
    for (let index = 0; index < total; index += 1) {
      signal.throwIfAborted();
      const measured = index >= config.submitWarmup;
      const viaDispatcher = async () => {
        try {
          const ms = await postJob(child.url, ctx.apiToken, benchRequest(nextJobId()), signal);
          if (measured) dispatcher.push(ms);
        } catch (error) {
          if (signal.aborted) throw error;
          failed("dispatcher", error);
        }
      };
      const viaClient = async () => {
        // Rendering is the dispatcher's work, not the bare client's: render before the clock starts.
        const manifest = benchManifest(benchRequest(nextJobId()), namespace);
        const started = now();
        try {
          await create(manifest);
          if (measured) bare.push(now() - started);
        } catch (error) {
          failed("bare", error);
        }
      };
      if (index % 2 === 0) {
        await viaDispatcher();
        await viaClient();
      } else {
        await viaClient();
        await viaDispatcher();
      }
      if ((index + 1) % 50 === 0) ctx.log(`submit: ${index + 1}/${total} pairs`);
    }
  } finally {
    await child.stop();
  }
  await ctx.dropNamespace(namespace);
  const dispatcherMs = summarize(dispatcher);
  const bareMs = summarize(bare);
  return {
    namespace,
    samplesPerPath: config.submitSamples,
    warmupPerPath: config.submitWarmup,
    dispatcherMs,
    bareMs,
    p50Ratio: dispatcherMs && bareMs ? round(dispatcherMs.p50 / bareMs.p50, 2) : undefined,
    p99Ratio: dispatcherMs && bareMs ? round(dispatcherMs.p99 / bareMs.p99, 2) : undefined,
    errors,
  };
}
