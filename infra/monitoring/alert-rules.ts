/**
 * The platform's Prometheus alert rules, as data: the PrometheusRule applies
 * them and test/infra runs them through `promtool test rules`. Metric names come
 * from the dispatcher's list.
 */
import { DISPATCHER_SCRAPE_JOB, METRIC, METRIC_LABEL } from "../../dispatcher/metric-names.ts";
import type { Phase } from "../../dispatcher/status/status-model.ts";

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  /** How long the condition must hold before the alert fires. */
  readonly for: string;
  readonly labels: { readonly severity: "warning" | "critical" };
  readonly annotations: { readonly summary: string; readonly description: string };
}

export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

const ALERT_THRESHOLDS = {
  /** Share of jobs finishing in the last hour that failed. */
  failureRatio: 0.25,
  /** Fewer failures than this in an hour are noise, whatever the ratio. */
  minFailuresPerHour: 3,
  /** 90th percentile of the time jobs waited for GPUs, over the last hour. */
  queueWaitP90Seconds: 30 * 60,
  /** Jobs queued and none leaving the queue for this long: nothing will schedule them. */
  queueStalledFor: "30m",
  /** Status callbacks failing without a break for this long. */
  callbackFailuresFor: "15m",
  dispatcherDownFor: "5m",
} as const;

const to = (phase: Phase) => `${METRIC_LABEL.to}="${phase}"`;
const from = (phase: Phase) => `${METRIC_LABEL.from}="${phase}"`;
const failedInLastHour = `sum(increase(${METRIC.transitions}{${to("failed")}}[1h]))`;
const finishedInLastHour = `sum(increase(${METRIC.transitions}{${METRIC_LABEL.to}=~"${"completed" satisfies Phase}|${"failed" satisfies Phase}"}[1h]))`;
const dispatcherUp = `up{job="${DISPATCHER_SCRAPE_JOB}"}`;

export const TRAINING_ALERT_GROUPS: readonly RuleGroup[] = [
  {
    name: "training-jobs",
    rules: [
      {
        alert: "TrainingJobFailureRateHigh",
        expr: `(${failedInLastHour} / ${finishedInLastHour}) > ${ALERT_THRESHOLDS.failureRatio} and ${failedInLastHour} >= ${ALERT_THRESHOLDS.minFailuresPerHour}`,
        for: "15m",
        labels: { severity: "warning" },
        annotations: {
          summary: "Many training jobs are failing",
          description: `{{ $value | humanizePercentage }} of the training jobs that finished in the last hour failed (threshold ${ALERT_THRESHOLDS.failureRatio * 100}%). Break failures down by reason on the Training jobs dashboard.`,
        },
      },
      {
        alert: "TrainingJobsQueuedTooLong",
        expr: `histogram_quantile(0.9, sum by (le) (rate(${METRIC.queuedDuration}_bucket[1h]))) > ${ALERT_THRESHOLDS.queueWaitP90Seconds}`,
        for: "15m",
        labels: { severity: "warning" },
        annotations: {
          summary: "Training jobs wait long for GPUs",
          description:
            "The 90th percentile wait in the queue over the last hour is {{ $value | humanizeDuration }}. Check the GPU quota, the node pools' maximum size and the cloud's GPU capacity.",
        },
      },
      {
        alert: "TrainingQueueStalled",
        expr: `max(${METRIC.jobsByPhase}{${METRIC_LABEL.phase}="${"queued" satisfies Phase}"}) > 0 unless sum(increase(${METRIC.transitions}{${from("queued")}}[${ALERT_THRESHOLDS.queueStalledFor}])) > 0`,
        for: ALERT_THRESHOLDS.queueStalledFor,
        labels: { severity: "warning" },
        annotations: {
          summary: "Queued training jobs are not starting",
          description: `{{ $value }} jobs are queued and none has left the queue for ${ALERT_THRESHOLDS.queueStalledFor}: no node can take them (GPU type, quota, pool at its maximum, or the autoscaler is failing).`,
        },
      },
    ],
  },
  {
    name: "training-dispatcher",
    rules: [
      {
        alert: "TrainingStatusCallbacksFailing",
        expr: `sum(rate(${METRIC.callbackFailures}[5m])) > 0`,
        for: ALERT_THRESHOLDS.callbackFailuresFor,
        labels: { severity: "warning" },
        annotations: {
          summary: "Status callbacks to the backend are failing",
          description: `Status callbacks to the backend have been failing for ${ALERT_THRESHOLDS.callbackFailuresFor} ({{ $value | printf "%.2f" }} failures/s). The dispatcher retries, but the backend shows stale job states until they get through.`,
        },
      },
      {
        alert: "TrainingDispatcherDown",
        expr: `sum(${dispatcherUp}) == 0 or absent(${dispatcherUp})`,
        for: ALERT_THRESHOLDS.dispatcherDownFor,
        labels: { severity: "critical" },
        annotations: {
          summary: "The training dispatcher is down",
          description:
            "Prometheus has no reachable dispatcher replica: jobs cannot be submitted or stopped, and no status reaches the backend.",
        },
      },
    ],
  },
];
