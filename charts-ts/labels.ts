/**
 * Label and annotation names the platform puts on training Jobs and their Pods.
 * The dispatcher selects and filters by these, the NetworkPolicy and the alert
 * rules match on them: change them here or nowhere.
 */

export const LABEL = {
  app: "app",
  jobId: "job-id",
  framework: "framework",
  projectId: "project-id",
  priority: "priority",
} as const;

/** Value of the `app` label on every training Job and Pod. */
export const TRAINING_JOB_APP = "training-job";

const ANNOTATION_PREFIX = "training-platform.io";

export const ANNOTATION = {
  /** The normalized request the Job was rendered from, as canonical JSON. */
  request: `${ANNOTATION_PREFIX}/request`,
  /** Set by the dispatcher when a stop is requested (RFC 3339); it makes the phase `stopped`. */
  stoppedAt: `${ANNOTATION_PREFIX}/stopped-at`,
  /**
   * Set by the dispatcher when it gives up on a job that cannot start (JSON {reason, message, at});
   * the Job is suspended at the same time and its phase becomes `failed` with that reason.
   */
  failedFast: `${ANNOTATION_PREFIX}/failed-fast`,
  /**
   * What the pods said before the dispatcher had them removed (stop, fail-fast): JSON
   * {transitions, attempts, lastExitCode?, node?}, so the history outlives the pods.
   */
  history: `${ANNOTATION_PREFIX}/history`,
  /**
   * Set by the dispatcher once a stopped or failed-fast Job's Kueue Workload is inactive (RFC 3339), so
   * no replica looks for that Workload again, at start-up or on any later change of the Job.
   */
  workloadDeactivated: `${ANNOTATION_PREFIX}/workload-deactivated`,
  /** How many of the job's transitions the backend has acknowledged, in order. */
  deliveredTransitions: `${ANNOTATION_PREFIX}/delivered-transitions`,
} as const;

/** The label the Job controller puts on a Job's pods. */
export const JOB_NAME_LABEL = "batch.kubernetes.io/job-name";

/**
 * The dispatcher's own pod labels: its Deployment, Service and PodDisruptionBudget select on them,
 * so a trainer pod carrying them would count as a dispatcher replica.
 */
export const DISPATCHER_LABELS = {
  "app.kubernetes.io/name": "training-dispatcher",
  "app.kubernetes.io/part-of": "training-platform",
} as const;

/** Label keys a request may not set, because the platform owns them. */
export const RESERVED_LABEL_KEYS: ReadonlySet<string> = new Set([
  ...Object.values(LABEL),
  ...Object.keys(DISPATCHER_LABELS),
  "job-name",
  JOB_NAME_LABEL,
  "controller-uid",
  "batch.kubernetes.io/controller-uid",
]);

/**
 * Label key prefixes (DNS domains) a request may not use, nor any subdomain of them:
 * Kubernetes' own (`kubernetes.io/`, `app.kubernetes.io/`, `node-role.kubernetes.io/`,
 * `k8s.io/`, `cluster-autoscaler.k8s.io/`, ...), Kubernetes SIG projects' (`kueue.x-k8s.io/`: a request
 * naming a queue or a priority class itself would pick its own quota) and the platform's.
 */
export const RESERVED_LABEL_DOMAINS: readonly string[] = ["kubernetes.io", "k8s.io", "x-k8s.io", ANNOTATION_PREFIX];

/** Whether a label key's prefix is a reserved domain or one of its subdomains. */
export function hasReservedLabelPrefix(key: string): boolean {
  const slash = key.indexOf("/");
  if (slash === -1) return false;
  const domain = key.slice(0, slash);
  return RESERVED_LABEL_DOMAINS.some((reserved) => domain === reserved || domain.endsWith(`.${reserved}`));
}

const TRAINING_JOB_NAME_PREFIX = "training-job-";

export function trainingJobName(jobId: number): string {
  return `${TRAINING_JOB_NAME_PREFIX}${jobId}`;
}

/** The name itself when it is a training Job's. */
export function trainingJobNameOf(name: string | undefined): string | undefined {
  return name?.startsWith(TRAINING_JOB_NAME_PREFIX) ? name : undefined;
}

/** The training Job a pod belongs to, from the pod's name (`<job name>-<5 random characters>`). */
export function trainingJobNameOfPod(podName: string | undefined): string | undefined {
  const match = podName?.match(/^(.+)-[a-z0-9]{5}$/);
  return match?.[1]?.startsWith(TRAINING_JOB_NAME_PREFIX) ? match[1] : undefined;
}
