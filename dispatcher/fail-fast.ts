/**
 * Ends jobs that cannot start instead of letting them hang: a trainer container stuck
 * waiting on its image or its configuration (ErrImagePull, ImagePullBackOff,
 * CreateContainerConfigError, ...) past the startup deadline. The Job is suspended (the
 * Job controller removes its pods, no further attempts) and annotated with the reason,
 * which the status derivation reports as `failed`. Every replica may do it: the patch
 * is the same whoever writes it.
 */
import { BatchV1Api, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { ANNOTATION } from "../charts-ts/labels.ts";
import { type FailedFast, historyOf, IMAGE_TROUBLE } from "./job-status.ts";
import type { JobUpdate, JobWatch } from "./job-watch.ts";

const RETRY_MS = 5_000;

export interface FailFastProps {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly watch: JobWatch;
  /** How long a trainer may wait on its image or configuration. */
  readonly startupDeadlineSeconds: number;
}

export class FailFast {
  private readonly props: FailFastProps;
  private readonly batch: BatchV1Api;
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(props: FailFastProps) {
    this.props = props;
    this.batch = props.kubeConfig.makeApiClient(BatchV1Api);
    props.watch.onUpdate((update) => this.consider(update));
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /** The stuck state's start, when the job is stuck; a new update replaces any earlier verdict. */
  private stuckSince({ status }: JobUpdate): number | undefined {
    if ((status.phase !== "starting" && status.phase !== "retrying") || !IMAGE_TROUBLE.has(status.reason)) return undefined;
    return Date.parse(status.transitions.at(-1)?.at ?? "");
  }

  private consider(update: JobUpdate): void {
    const name = update.job.metadata?.name ?? update.status.name;
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
    const since = this.stuckSince(update);
    if (since === undefined || Number.isNaN(since)) return;
    const due = since + this.props.startupDeadlineSeconds * 1000 - Date.now();
    // A status that does not change brings no update, so the deadline needs its own timer.
    this.schedule(name, Math.max(0, due));
  }

  private schedule(name: string, delayMs: number): void {
    // A failed patch (API server away) is tried again: no update may come to re-arm it.
    this.timers.set(
      name,
      setTimeout(() => void this.giveUp(name).catch(() => this.schedule(name, RETRY_MS)), delayMs),
    );
  }

  private async giveUp(name: string): Promise<void> {
    this.timers.delete(name);
    const current = this.props.watch.current().find((update) => update.job.metadata?.name === name);
    if (!current || this.stuckSince(current) === undefined) return;
    const verdict: FailedFast = {
      reason: current.status.reason,
      message: `the trainer could not start within ${this.props.startupDeadlineSeconds}s: ${current.status.message ?? current.status.reason}`,
      at: new Date().toISOString(),
    };
    await this.batch.patchNamespacedJob(
      {
        name,
        namespace: this.props.namespace,
        body: {
          metadata: {
            annotations: {
              [ANNOTATION.failedFast]: JSON.stringify(verdict),
              [ANNOTATION.history]: JSON.stringify(historyOf(current.status)),
            },
          },
          spec: { suspend: true },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }
}
