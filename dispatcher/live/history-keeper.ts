/**
 * Keeps a stopped job's last attempt on record. A stop suspends the Job and its pods go, with
 * the exit code the trainer answered SIGTERM with; the stop itself recorded the history before
 * that (kubernetes-executor.ts). Once the pods have all ended, the history is recorded again,
 * so the stopped transition keeps its exit code and the logs can say how the attempt ended
 * after the pods are gone. Any replica may write it: the content is derived, the same for all.
 */
import { BatchV1Api, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { ANNOTATION } from "../../charts-ts/labels.ts";
import { type Log, noLog } from "../log.ts";
import { historyOf, parseRecordedHistory, STOPPED_MESSAGE } from "../status/job-status.ts";
import { type JobUpdate, type JobWatch, jobKeyOf } from "./job-watch.ts";

export interface HistoryKeeperProps {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly watch: JobWatch;
  /** @default no log */
  readonly log?: Log;
}

export class HistoryKeeper {
  private readonly batch: BatchV1Api;
  private readonly props: HistoryKeeperProps;
  /** Jobs (uid) recorded by this replica or being recorded: one write each. */
  private readonly kept = new Set<string>();

  constructor(props: HistoryKeeperProps) {
    this.props = props;
    this.batch = props.kubeConfig.makeApiClient(BatchV1Api);
    props.watch.onUpdate((update) => this.consider(update));
    props.watch.onRemoved((job) => this.kept.delete(jobKeyOf(job)));
  }

  private consider({ job, status }: JobUpdate): void {
    const last = status.transitions.at(-1);
    if (last?.phase !== "stopped" || last.exitCode === undefined || this.kept.has(jobKeyOf(job))) return;
    const recorded = parseRecordedHistory(job.metadata?.annotations?.[ANNOTATION.history]);
    if (recorded?.transitions.at(-1)?.phase === "stopped") return;
    // Only once every pod has ended: no trainer left to checkpoint.
    if (last.message !== STOPPED_MESSAGE) return;
    this.kept.add(jobKeyOf(job));
    const body = { metadata: { annotations: { [ANNOTATION.history]: JSON.stringify(historyOf(status)) } } };
    this.batch
      .patchNamespacedJob(
        { name: job.metadata?.name ?? "", namespace: this.props.namespace, body },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      )
      .catch((error: unknown) => {
        this.kept.delete(jobKeyOf(job));
        (this.props.log ?? noLog)("warn", "could not record a stopped job's history", { job: job.metadata?.name, error: String(error) });
      });
  }
}
