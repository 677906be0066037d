/**
 * Queue positions from Kueue's visibility API, for the live status. Kueue keeps no position on
 * the Workload and offers no watch of them, so this asks, per LocalQueue that holds a waiting
 * training job, every `intervalMs` and soon after a Workload changes; with nothing waiting it
 * sends no request at all. A position that changed re-derives its job (a new pushed event).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { type Log, noLog } from "../log.ts";
import { pendingPositions } from "./kueue-api.ts";

export interface QueuePositionsProps {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** The LocalQueues holding a waiting job now, with those jobs' Workload -> Job names. */
  readonly waiting: () => ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** Hears of each job whose position changed, by Job name. */
  readonly changed: (jobName: string) => void;
  /** @default 2_000 */
  readonly intervalMs?: number;
  /** The soonest a Workload change brings the next poll. @default 200 */
  readonly minGapMs?: number;
  /** @default no log */
  readonly log?: Log;
}

export class QueuePositions {
  private readonly props: QueuePositionsProps;
  /** Workload name -> position (0-based), as last polled. */
  private positions = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private again = false;
  private lastPoll = 0;
  private stopped = true;
  /** LocalQueues whose last poll failed: an outage is logged once, not every poll. */
  private readonly failing = new Set<string>();
  /** Requests to the visibility API so far (nothing waiting: none), and polls, for the tests. */
  requests = 0;
  polls = 0;

  constructor(props: QueuePositionsProps) {
    this.props = props;
  }

  /** The Workload's position in its LocalQueue (0 = next), if it was listed. */
  positionOf(workloadName: string | undefined): number | undefined {
    return workloadName === undefined ? undefined : this.positions.get(workloadName);
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** A Workload changed: positions may have moved; poll soon. */
  poke(): void {
    if (this.stopped) return;
    if (this.polling) {
      this.again = true;
      return;
    }
    this.schedule(Math.max(0, this.lastPoll + (this.props.minGapMs ?? 200) - Date.now()));
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), delayMs);
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    this.polling = true;
    this.lastPoll = Date.now();
    const waiting = this.props.waiting();
    const next = new Map<string, number>();
    const jobOf = new Map<string, string>();
    try {
      await Promise.all(
        [...waiting].map(async ([queue, jobs]) => {
          for (const [workload, job] of jobs) jobOf.set(workload, job);
          this.requests += 1;
          try {
            for (const [workload, position] of await pendingPositions(this.props.kubeConfig, this.props.namespace, queue))
              if (jobs.has(workload)) next.set(workload, position);
            if (this.failing.delete(queue)) (this.props.log ?? noLog)("info", "queue positions available again", { queue });
          } catch (error) {
            // Keep what was known: a visibility API away for a moment must not blank every position.
            for (const workload of jobs.keys()) {
              const known = this.positions.get(workload);
              if (known !== undefined) next.set(workload, known);
            }
            if (!this.failing.has(queue))
              (this.props.log ?? noLog)("warn", "queue positions unavailable; keeping the last known", { queue, error: String(error) });
            this.failing.add(queue);
          }
        }),
      );
      const previous = this.positions;
      this.positions = next;
      this.polls += 1;
      for (const workload of new Set([...previous.keys(), ...next.keys()])) {
        const job = jobOf.get(workload);
        if (job !== undefined && previous.get(workload) !== next.get(workload)) this.props.changed(job);
      }
    } finally {
      this.polling = false;
      if (!this.stopped) {
        const pokedMeanwhile = this.again;
        this.again = false;
        this.schedule(pokedMeanwhile ? (this.props.minGapMs ?? 200) : (this.props.intervalMs ?? 2_000));
      }
    }
  }
}
