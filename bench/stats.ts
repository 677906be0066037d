/** Percentiles and small numeric helpers for the benchmark figures. */
import { apiServerMessage } from "../dispatcher/api-error.ts";

export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Nearest-rank percentile of an ascending list: the smallest value with at least p% of the values at or below it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new Error("percentile of an empty list");
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

export function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Summary of samples (milliseconds or any unit), rounded for the report; undefined when there are none. */
export function summarize(values: readonly number[], digits = 1): Summary | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    min: round(sorted[0] as number, digits),
    p50: round(percentile(sorted, 50), digits),
    p90: round(percentile(sorted, 90), digits),
    p99: round(percentile(sorted, 99), digits),
    max: round(sorted.at(-1) as number, digits),
    mean: round(sorted.reduce((sum, value) => sum + value, 0) / sorted.length, digits),
  };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Polls `probe` until it returns something other than undefined/false, or fails with `what` after timeoutMs. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  signal?: AbortSignal,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(intervalMs, signal);
  }
}

/** Runs `task` for each item with at most `concurrency` in flight; returns the errors (the first 5 messages kept). */
export async function pool<T>(
  items: Iterable<T>,
  concurrency: number,
  task: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<{ ok: number; failed: number; firstErrors: string[] }> {
  const iterator = items[Symbol.iterator]();
  let ok = 0;
  let failed = 0;
  const firstErrors: string[] = [];
  const worker = async () => {
    for (;;) {
      signal?.throwIfAborted();
      const next = iterator.next();
      if (next.done) return;
      try {
        await task(next.value);
        ok += 1;
      } catch (error) {
        failed += 1;
        if (firstErrors.length < 5) firstErrors.push(errorMessage(error));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ok, failed, firstErrors };
}

/** An error's message; for a Kubernetes API failure, the API server's own words. */
export function errorMessage(error: unknown): string {
  return apiServerMessage(error);
}

/** Milliseconds on the monotonic clock of this process. */
export const now = (): number => performance.now();
