/**
 * Why the API server refused a Job's pod, from the Job controller's `FailedCreate` event
 * (or a dry run's refusal): a full quota frees up (or is raised), while a pod above the
 * LimitRange or forbidden by Pod Security can never be admitted however long the job waits.
 */
import type { CoreV1Event, V1Job } from "@kubernetes/client-node";
import type { REASON } from "./status-model.ts";

export interface PodRefusal {
  readonly reason: typeof REASON.quotaExceeded | typeof REASON.podRejected;
  /** The API server's words, without the generated pod name (it changes with every try). */
  readonly message: string;
  /** Waiting cannot help: the namespace will never admit this pod. */
  readonly permanent: boolean;
}

/** Admission refusals no change in the namespace's load can lift: LimitRange bounds and Pod Security. */
const NEVER_ADMITTED = [
  /violates PodSecurity/,
  /(?:maximum|minimum) \S+ usage per (?:Container|Pod) is/,
  /max limit to request ratio per (?:Container|Pod) is/,
];

/** Classifies the API server's refusal of a pod (a Status message or a FailedCreate event's). */
export function podRefusalOf(apiMessage: string): PodRefusal {
  const message = apiMessage
    .replace(/^\(combined from similar events\): /, "")
    .replace(/^Error creating: /, "")
    .replace(/^pods "[^"]*" is forbidden: /, "")
    .trim();
  // A quota is the namespace's to raise, even one smaller than the pod: the job waits and says why.
  if (message.startsWith("exceeded quota:")) return { reason: "QuotaExceeded", message, permanent: false };
  return { reason: "PodRejected", message, permanent: NEVER_ADMITTED.some((pattern) => pattern.test(message)) };
}

const seconds = (value: Date | string | undefined) => (value === undefined ? 0 : Math.floor(new Date(value).getTime() / 1000) * 1000);

/**
 * The refusal a Job waited on between two of its pods: FailedCreate events about the Job newer
 * than the earlier pod (`after`) and no newer than the pod that was then admitted (`until`; none:
 * it is still waiting), with the time of the first of them (stable: the event recorder makes new
 * Event objects as the message varies) and the latest one's words. Whole seconds, like the
 * events; a tie goes to the earlier pod.
 */
export function refusalBetween(
  job: V1Job,
  events: readonly CoreV1Event[],
  afterPod: Date | string | undefined,
  untilPod?: Date | string,
): (PodRefusal & { readonly since: string }) | undefined {
  const after = seconds(afterPod);
  const until = untilPod === undefined ? Number.POSITIVE_INFINITY : seconds(untilPod);
  const refusals = events
    .filter(
      (event) =>
        event.involvedObject.kind === "Job" &&
        event.involvedObject.name === job.metadata?.name &&
        (event.involvedObject.uid === undefined || event.involvedObject.uid === job.metadata?.uid) &&
        event.reason === "FailedCreate" &&
        seconds(event.lastTimestamp ?? event.eventTime ?? event.firstTimestamp) > after &&
        seconds(event.firstTimestamp ?? event.eventTime ?? event.lastTimestamp) <= until,
    )
    .sort((a, b) => seconds(a.lastTimestamp ?? a.eventTime) - seconds(b.lastTimestamp ?? b.eventTime));
  const latest = refusals.at(-1);
  if (!latest) return undefined;
  const first = Math.min(...refusals.map((event) => seconds(event.firstTimestamp ?? event.eventTime ?? event.lastTimestamp)));
  return { ...podRefusalOf(latest.message ?? ""), since: new Date(first).toISOString() };
}
