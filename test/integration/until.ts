import { until as poll } from "../../bench/stats.ts";

/** bench/stats.ts's `until`, with the integration tests' defaults: a minute, polled every 100 ms. */
export function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
): Promise<T> {
  return poll(what, probe, timeoutMs, undefined, 100);
}
