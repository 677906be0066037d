// The restart policy on its own: a stand-in with ListWatch's `on`/`start` shape breaks on
// command, under fake timers. The watches themselves run against the real control plane
// in test/integration.
import type { KubernetesObject, ListWatch } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { backoffDelay, restartWhenBroken } from "../../dispatcher/live/job-watch.ts";

class BreakingWatch {
  readonly starts: number[] = [];
  private readonly handlers = new Map<string, ((error?: unknown) => void)[]>();
  /** Whether a restarted watch breaks again at once (the API server is still away). */
  down = true;

  on(verb: string, handler: (error?: unknown) => void): void {
    this.handlers.set(verb, [...(this.handlers.get(verb) ?? []), handler]);
  }
  /** Like ListWatch: "connect" comes first, before the list or watch request has answered. */
  async start(): Promise<void> {
    this.starts.push(Date.now());
    for (const handler of this.handlers.get("connect") ?? []) handler();
    if (this.down) this.break();
  }
  break(): void {
    for (const handler of this.handlers.get("error") ?? []) handler(new Error("connection refused"));
  }
  gaps(): number[] {
    return this.starts.slice(1).map((at, index) => at - (this.starts[index] as number));
  }
}

const asListWatch = (watch: BreakingWatch) => watch as unknown as Pick<ListWatch<KubernetesObject>, "on" | "start">;

describe("restartWhenBroken", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("waits longer after each failure in a row, up to the cap, while the API server stays away", async () => {
    const watch = new BreakingWatch();
    const reported: { error: unknown; delayMs: number }[] = [];
    restartWhenBroken(asListWatch(watch), {
      watch: "jobs",
      minDelayMs: 200,
      maxDelayMs: 10_000,
      stopped: () => false,
      restarted: (error, delayMs) => reported.push({ error, delayMs }),
    });
    watch.break();
    await vi.advanceTimersByTimeAsync(120_000);
    const gaps = [watch.starts[0] as number, ...watch.gaps()];
    // Full jitter over [base/2, base]: each base doubles from 200 ms and stops at 10 s.
    gaps.forEach((gap, failure) => {
      const base = Math.min(10_000, 200 * 2 ** failure);
      expect(gap).toBeGreaterThanOrEqual(base / 2);
      expect(gap).toBeLessThanOrEqual(base);
    });
    expect(gaps.slice(-3).every((gap) => gap >= 5_000)).toBe(true);
    // About 20 attempts in two minutes, not the ~800 a fixed 150 ms would make.
    expect(watch.starts.length).toBeLessThan(25);
    // Each break is reported with what broke it and the delay actually waited.
    expect(reported.length).toBe(watch.starts.length + 1);
    expect(reported.slice(0, gaps.length).map((report) => report.delayMs)).toEqual(gaps);
    expect(reported.every((report) => (report.error as Error).message === "connection refused")).toBe(true);
  });

  it("starts again from the shortest delay once a restarted watch has stayed up", async () => {
    const watch = new BreakingWatch();
    restartWhenBroken(asListWatch(watch), { watch: "jobs", minDelayMs: 200, maxDelayMs: 1_000, stopped: () => false });
    watch.break();
    await vi.advanceTimersByTimeAsync(5_000);
    watch.down = false;
    await vi.advanceTimersByTimeAsync(5_000);
    const before = watch.starts.length;
    // Up for longer than twice the cap, then one break: the first delay again.
    await vi.advanceTimersByTimeAsync(2_500);
    watch.break();
    const brokeAt = Date.now();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(watch.starts.length).toBe(before + 1);
    expect((watch.starts.at(-1) as number) - brokeAt).toBeLessThanOrEqual(200);
  });

  it("does not restart a stopped watch", async () => {
    const watch = new BreakingWatch();
    let stopped = false;
    restartWhenBroken(asListWatch(watch), { watch: "jobs", minDelayMs: 200, maxDelayMs: 1_000, stopped: () => stopped });
    watch.break();
    stopped = true;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(watch.starts).toEqual([]);
  });
});

describe("backoffDelay", () => {
  it("spreads each delay over the upper half of its doubled base, capped", () => {
    expect(backoffDelay(0, 200, 10_000, () => 0)).toBe(100);
    expect(backoffDelay(0, 200, 10_000, () => 1)).toBe(200);
    expect(backoffDelay(3, 200, 10_000, () => 1)).toBe(1_600);
    expect(backoffDelay(20, 200, 10_000, () => 0.5)).toBe(7_500);
  });
});
