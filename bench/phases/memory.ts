/**
 * (e) Dispatcher RSS while tracking N jobs. The dispatcher runs in its own process,
 * twice side by side on the same namespace: watch only (no backend configured), and
 * watch + status callbacks to the recording backend (as deployed with a backend).
 * RSS before any job exists; then N suspended Jobs are created and, once each
 * process's watch holds them all (and the backend acknowledged every callback), RSS
 * again: as is and right after a full garbage collection. Peaks while filling too.
 */
import type { PhaseContext } from "../context.ts";
import { DispatcherChild } from "../dispatcher-child.ts";
import type { ChildStats } from "../dispatcher-process.ts";
import { now, round, sleep, until } from "../stats.ts";
import { fillSuspended } from "./fill.ts";

const MB = 1024 * 1024;

export interface MemoryFigures {
  readonly rssMB: number;
  readonly heapUsedMB: number;
  /** Heap V8 has reserved: live objects plus garbage not yet collected and free space it keeps. */
  readonly heapTotalMB: number;
  readonly rssAfterGcMB: number | undefined;
  readonly heapUsedAfterGcMB: number | undefined;
  /** Memory of C++ objects bound to JS (sockets, buffers) and ArrayBuffers. */
  readonly externalMB: number;
  readonly openFds: number | undefined;
  readonly tracked: number;
}

export interface MemoryVariant {
  readonly name: "watch only" | "watch + callbacks";
  readonly before: MemoryFigures;
  readonly atN: MemoryFigures;
  readonly peakRssMB: number;
  readonly peakOpenFds: number | undefined;
  /** (RSS at N - RSS before) / N. */
  readonly rssPerJobKB: number;
  /** (heap used after GC at N - the same before) / N: what the tracked state itself costs. */
  readonly heapPerJobKB: number | undefined;
  /** Seconds from the last create until this process tracked every job (and, with callbacks, had them acknowledged). */
  readonly settleSeconds: number;
}

export interface MemoryResult {
  readonly namespace: string;
  readonly jobs: number;
  readonly variants: readonly MemoryVariant[];
  readonly fill: { readonly seconds: number; readonly perSecond: number };
}

function figures(stats: ChildStats): MemoryFigures {
  return {
    rssMB: round(stats.memory.rss / MB, 1),
    heapUsedMB: round(stats.memory.heapUsed / MB, 1),
    heapTotalMB: round(stats.memory.heapTotal / MB, 1),
    rssAfterGcMB: stats.rssAfterGc === undefined ? undefined : round(stats.rssAfterGc / MB, 1),
    heapUsedAfterGcMB: stats.heapUsedAfterGc === undefined ? undefined : round(stats.heapUsedAfterGc / MB, 1),
    externalMB: round(stats.memory.external / MB, 1),
    openFds: stats.openFds,
    tracked: stats.tracked,
  };
}

interface Tracker {
  readonly name: MemoryVariant["name"];
  readonly child: DispatcherChild;
  before?: MemoryFigures;
  peakRss: number;
  peakFds: number | undefined;
  settledAt?: number;
}

export async function memoryPhase(ctx: PhaseContext): Promise<MemoryResult> {
  const { config, signal } = ctx;
  const namespace = await ctx.namespace("bench-rss");
  const trackers: Tracker[] = [];
  const variants: { name: MemoryVariant["name"]; backendUrl?: string }[] = [
    { name: "watch only" },
    ...(config.rssCallbacks ? [{ name: "watch + callbacks" as const, backendUrl: ctx.backend.url }] : []),
  ];
  try {
    for (const variant of variants) {
      const child = await DispatcherChild.start({
        kubeconfig: ctx.kubeconfigPath,
        namespace,
        apiToken: ctx.apiToken,
        ...(variant.backendUrl !== undefined && { backendUrl: variant.backendUrl }),
      });
      trackers.push({ name: variant.name, child, peakRss: 0, peakFds: undefined });
    }
    await sleep(3000, signal);
    for (const tracker of trackers) {
      tracker.before = figures(await tracker.child.stats({ gc: true }));
      tracker.peakRss = tracker.before.rssMB;
      tracker.peakFds = tracker.before.openFds;
      ctx.log(`memory: ${tracker.name}: RSS ${tracker.before.rssMB} MB before any job`);
    }
    const sample = async (tracker: Tracker) => {
      const stats = await tracker.child.stats();
      tracker.peakRss = Math.max(tracker.peakRss, stats.memory.rss / MB);
      if (stats.openFds !== undefined) tracker.peakFds = Math.max(tracker.peakFds ?? 0, stats.openFds);
      return stats;
    };
    const sampler = setInterval(() => {
      for (const tracker of trackers) sample(tracker).catch(() => undefined);
    }, 1000);
    let fill: Awaited<ReturnType<typeof fillSuspended>>;
    let filledAt: number;
    try {
      ctx.log(`memory: creating ${config.rssJobs} suspended Jobs in ${namespace}`);
      fill = await fillSuspended(ctx, namespace, config.rssJobs, async (created) => {
        const states = await Promise.all(
          trackers.map(async (tracker) => {
            const stats = await sample(tracker);
            return `${tracker.name} tracks ${stats.tracked}, RSS ${Math.round(stats.memory.rss / MB)} MB`;
          }),
        );
        ctx.log(`memory: ${created} created; ${states.join("; ")}`);
      });
      filledAt = now();
      ctx.log(`memory: ${config.rssJobs} created in ${fill.seconds} s (${fill.perSecond}/s); waiting for every process to track them all`);
      let lastLog = now();
      await until(
        `every dispatcher process to track ${config.rssJobs} jobs, with callbacks acknowledged`,
        async () => {
          const states = await Promise.all(
            trackers.map(async (tracker) => {
              const stats = await sample(tracker);
              if (tracker.settledAt === undefined && stats.tracked >= config.rssJobs && stats.pendingCallbacks === 0)
                tracker.settledAt = now();
              return `${tracker.name} tracks ${stats.tracked} (${stats.pendingCallbacks} callbacks pending)`;
            }),
          );
          if (now() - lastLog > 5000) {
            lastLog = now();
            ctx.log(`memory: ${states.join("; ")}`);
          }
          return trackers.every((tracker) => tracker.settledAt !== undefined);
        },
        600_000,
        signal,
        1000,
      );
    } finally {
      clearInterval(sampler);
    }
    await sleep(5000, signal);
    const results: MemoryVariant[] = [];
    for (const tracker of trackers) {
      const atN = figures(await tracker.child.stats({ gc: true }));
      const before = tracker.before as MemoryFigures;
      ctx.log(`memory: ${tracker.name}: RSS ${atN.rssMB} MB tracking ${atN.tracked} jobs (${atN.rssAfterGcMB} MB after GC)`);
      results.push({
        name: tracker.name,
        before,
        atN,
        peakRssMB: round(Math.max(tracker.peakRss, atN.rssMB), 1),
        peakOpenFds: tracker.peakFds,
        rssPerJobKB: round(((atN.rssMB - before.rssMB) * 1024) / config.rssJobs, 1),
        heapPerJobKB:
          atN.heapUsedAfterGcMB !== undefined && before.heapUsedAfterGcMB !== undefined
            ? round(((atN.heapUsedAfterGcMB - before.heapUsedAfterGcMB) * 1024) / config.rssJobs, 1)
            : undefined,
        settleSeconds: round(((tracker.settledAt ?? filledAt) - filledAt) / 1000, 1),
      });
    }
    return { namespace, jobs: config.rssJobs, variants: results, fill: { seconds: fill.seconds, perSecond: fill.perSecond } };
  } finally {
    await Promise.all(trackers.map((tracker) => tracker.child.stop()));
    await ctx.dropNamespace(namespace);
  }
}
