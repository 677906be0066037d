/**
 * Names of the dispatcher's Prometheus metrics and their labels. The dispatcher
 * registers them, the alert rules and the Grafana dashboard query them: one list.
 */
export const METRIC = {
  submissions: "training_dispatcher_submissions_total",
  transitions: "training_dispatcher_transitions_total",
  submitDuration: "training_dispatcher_submit_duration_seconds",
  queuedDuration: "training_dispatcher_queued_duration_seconds",
  timeToRunning: "training_dispatcher_time_to_running_seconds",
  retries: "training_dispatcher_retries_total",
  callbackFailures: "training_dispatcher_callback_failures_total",
  callbackDeliveryLag: "training_dispatcher_callback_delivery_lag_seconds",
  jobsByPhase: "training_dispatcher_jobs",
  gpuSeconds: "training_dispatcher_gpu_seconds_total",
} as const;

/** Label names on those metrics. */
export const METRIC_LABEL = {
  framework: "framework",
  result: "result",
  from: "from",
  to: "to",
  reason: "reason",
  cause: "cause",
  phase: "phase",
  project: "project",
} as const;

/** Prometheus job label under which the dispatcher's /metrics is scraped. */
export const DISPATCHER_SCRAPE_JOB = "training-dispatcher";
