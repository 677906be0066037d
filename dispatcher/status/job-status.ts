/**
 * Derives a training job's status from the cluster's own objects: its Job, its
 * Pods (one per attempt) and their Events. Pure, so it is table-tested, and so a
 * restarted dispatcher rebuilds the same status, transitions included, from
 * nothing but what the API server holds.
 */
import type { CoreV1Event, V1ContainerStatus, V1Job, V1JobCondition, V1Pod } from "@kubernetes/client-node";
import { z } from "zod";
import { ANNOTATION } from "../../charts-ts/labels.ts";
import { type JobStatus, type Phase, REASON, TERMINAL_PHASES, type Transition, transitionSchema } from "./status-model.ts";

export interface ClusterObjects {
  readonly job: V1Job;
  /** The Job's pods, any order. */
  readonly pods: readonly V1Pod[];
  /** Events about those pods (FailedScheduling and friends), any order. */
  readonly events?: readonly CoreV1Event[];
}

/** Waiting reasons that mean the trainer cannot start until someone fixes the image or its config. */
export const IMAGE_TROUBLE: ReadonlySet<string> = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
]);

type Instant = Date | string | undefined;
const iso = (value: Instant): string | undefined => (value === undefined ? undefined : new Date(value).toISOString());
const millis = (value: Instant): number => (value === undefined ? 0 : new Date(value).getTime());

function condition(job: V1Job, type: string): V1JobCondition | undefined {
  return job.status?.conditions?.find((c) => c.type === type && c.status === "True");
}

function trainerStatus(pod: V1Pod): V1ContainerStatus | undefined {
  return pod.status?.containerStatuses?.[0];
}

interface Attempt {
  readonly number: number;
  readonly pod: V1Pod;
  readonly container: V1ContainerStatus | undefined;
}

function attemptsOf(pods: readonly V1Pod[]): Attempt[] {
  return [...pods]
    .sort(
      (a, b) =>
        millis(a.metadata?.creationTimestamp) - millis(b.metadata?.creationTimestamp) ||
        (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""),
    )
    .map((pod, index) => ({ number: index + 1, pod, container: trainerStatus(pod) }));
}

function exitOf(attempt: Attempt | undefined): { code?: number; reason?: string } {
  const terminated = attempt?.container?.state?.terminated ?? attempt?.container?.lastState?.terminated;
  return terminated ? { code: terminated.exitCode, ...(terminated.reason !== undefined && { reason: terminated.reason }) } : {};
}

function wasDisrupted(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === "DisruptionTarget" && c.status === "True") ?? false;
}

/** The fail-fast verdict the dispatcher records on a Job (fail-fast.ts). */
const failedFastSchema = z.object({ reason: z.string(), message: z.string(), at: z.iso.datetime() });
export type FailedFast = z.infer<typeof failedFastSchema>;

/** A JSON annotation the dispatcher wrote; anything malformed is not trusted. */
export function parseAnnotation<T>(schema: z.ZodType<T>, value: string | undefined): T | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(value));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** When a failed attempt handed over to the next: its container's end, else its pod's deletion, else the next pod's creation. */
function retriedAt(failed: Attempt, next: Attempt): string {
  return (
    iso(failed.container?.state?.terminated?.finishedAt) ??
    iso(failed.pod.metadata?.deletionTimestamp) ??
    iso(next.pod.metadata?.creationTimestamp) ??
    new Date(0).toISOString()
  );
}

/** Why an attempt ended badly, as a retry cause. */
function failureOf(attempt: Attempt): Pick<Transition, "reason" | "message"> {
  if (wasDisrupted(attempt.pod))
    return { reason: REASON.preempted, message: `attempt ${attempt.number} was disrupted (preemption, drain or eviction)` };
  const exit = exitOf(attempt);
  if (exit.reason === "OOMKilled")
    return { reason: REASON.oomKilled, message: `attempt ${attempt.number} ran out of memory (exit code ${exit.code})` };
  return { reason: REASON.error, message: `attempt ${attempt.number} exited with code ${exit.code ?? "unknown"}` };
}

function schedulingMessage(attempt: Attempt, events: readonly CoreV1Event[]): string | undefined {
  const fromCondition = attempt.pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False")?.message;
  const fromEvent = events
    .filter((e) => e.involvedObject.name === attempt.pod.metadata?.name && e.reason === "FailedScheduling")
    .sort((a, b) => millis(b.lastTimestamp ?? b.eventTime) - millis(a.lastTimestamp ?? a.eventTime))[0]?.message;
  return fromCondition ?? fromEvent;
}

/**
 * When an attempt first failed to schedule: the event remembers it after the condition has flipped.
 * Whole seconds, like the condition's time: the scheduler's event carries microseconds (eventTime),
 * and a time that moved when the other of the two arrived would change a transition already reported.
 */
function queuedSince(attempt: Attempt, events: readonly CoreV1Event[]): string | undefined {
  const times = events
    .filter((e) => e.involvedObject.name === attempt.pod.metadata?.name && e.reason === "FailedScheduling")
    .map((e) => Math.floor(millis(e.firstTimestamp ?? e.eventTime) / 1000) * 1000);
  const unschedulable = attempt.pod.status?.conditions?.find(
    (c) => c.type === "PodScheduled" && c.status === "False" && c.reason === "Unschedulable",
  );
  if (unschedulable) times.push(millis(unschedulable.lastTransitionTime));
  const earliest = times.filter((t) => t > 0).sort((a, b) => a - b)[0];
  return earliest === undefined ? undefined : new Date(earliest).toISOString();
}

/** Bound to a node. nodeName is the binding itself; a status rewrite may drop the PodScheduled condition. */
function isScheduled(pod: V1Pod): boolean {
  return Boolean(pod.spec?.nodeName) || (pod.status?.conditions?.some((c) => c.type === "PodScheduled" && c.status === "True") ?? false);
}

function scheduledAt(pod: V1Pod): Instant {
  return (
    pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "True")?.lastTransitionTime ??
    pod.status?.startTime ??
    pod.metadata?.creationTimestamp
  );
}

/** The transitions one attempt went through, in order. */
function attemptTransitions(attempt: Attempt, events: readonly CoreV1Event[], isRetry: boolean): Transition[] {
  const out: Transition[] = [];
  const { number: n, pod, container } = attempt;
  const add = (phase: Phase, at: Instant, reason: string, message?: string) => {
    const when = iso(at);
    if (when) out.push({ phase, reason, ...(message !== undefined && { message }), attempt: n, at: when });
  };
  const queued = queuedSince(attempt, events);
  if (queued) add("queued", queued, REASON.unschedulable, schedulingMessage(attempt, events));
  if (isScheduled(pod))
    add(
      isRetry ? "retrying" : "starting",
      scheduledAt(pod),
      REASON.containerCreating,
      `attempt ${n} scheduled on ${pod.spec?.nodeName ?? "a node"}`,
    );
  const started = container?.state?.running?.startedAt ?? container?.state?.terminated?.startedAt;
  if (started) add("running", started, REASON.started, `attempt ${n} running`);
  return out;
}

/** Everything the cluster says happened to a job, oldest first, consecutive repeats folded. */
function transitionsOf(objects: ClusterObjects, attempts: readonly Attempt[], current: Transition): Transition[] {
  const events = objects.events ?? [];
  const all: Transition[] = [{ phase: "pending", reason: REASON.created, at: iso(objects.job.metadata?.creationTimestamp) ?? current.at }];
  attempts.forEach((attempt, index) => {
    all.push(...attemptTransitions(attempt, events, index > 0));
    const finished = attempt.container?.state?.terminated?.finishedAt;
    const failed = attempt.pod.status?.phase === "Failed" || (attempt.container?.state?.terminated?.exitCode ?? 0) !== 0;
    const isLast = index === attempts.length - 1;
    if (failed && (!isLast || current.phase === "retrying")) {
      const cause = failureOf(attempt);
      all.push({
        phase: "retrying",
        ...cause,
        attempt: attempt.number,
        at: iso(finished) ?? iso(attempt.pod.metadata?.deletionTimestamp) ?? current.at,
      });
    }
  });
  all.push(current);
  const sorted = all.map((t, i) => ({ t, i })).sort((a, b) => millis(a.t.at) - millis(b.t.at) || a.i - b.i);
  return sorted.map(({ t }) => t).filter((t, i, list) => i === 0 || t.phase !== list[i - 1]?.phase);
}

/** The phase now, with its reason and the time it began. */
function currentPhase(objects: ClusterObjects, attempts: readonly Attempt[]): Transition {
  const { job } = objects;
  const latest = attempts.at(-1);
  const now = (at: Instant, fallback: Instant) => iso(at) ?? iso(fallback) ?? new Date(0).toISOString();
  const created = job.metadata?.creationTimestamp;

  const stoppedAt = job.metadata?.annotations?.[ANNOTATION.stoppedAt];
  if (stoppedAt !== undefined) {
    const stillRunning = attempts.some((a) => a.pod.status?.phase === "Running" || a.pod.status?.phase === "Pending");
    return {
      phase: "stopped",
      reason: REASON.stoppedByUser,
      message: stillRunning ? "stop requested; waiting for the trainer to checkpoint and exit" : "stopped on request",
      at: now(stoppedAt, created),
    };
  }
  const failedFast = parseAnnotation(failedFastSchema, job.metadata?.annotations?.[ANNOTATION.failedFast]);
  if (failedFast) return { phase: "failed", reason: failedFast.reason, message: failedFast.message, at: now(failedFast.at, created) };
  // The *Target conditions come first and stay: preferring them keeps a terminal transition's time stable.
  const complete = condition(job, "SuccessCriteriaMet") ?? condition(job, "Complete");
  if (complete)
    return {
      phase: "completed",
      reason: REASON.succeeded,
      message: `finished after ${attempts.length} attempt(s)`,
      at: now(complete.lastTransitionTime, created),
    };

  const failed = condition(job, "FailureTarget") ?? condition(job, "Failed");
  if (failed) return { phase: "failed", ...failedCause(failed, attempts), at: now(failed.lastTransitionTime, created) };

  if (job.spec?.suspend) return { phase: "pending", reason: REASON.suspended, message: "the Job is suspended", at: now(created, created) };
  if (!latest)
    return {
      phase: "pending",
      reason: REASON.created,
      message: "waiting for the Job controller to create a pod",
      at: now(created, created),
    };

  const podPhase = latest.pod.status?.phase;
  const previous = attempts.at(-2);
  if (podPhase === "Failed" || (podPhase === "Succeeded" && exitOf(latest).code !== 0)) {
    return {
      phase: "retrying",
      ...failureOf(latest),
      attempt: latest.number,
      at: now(latest.container?.state?.terminated?.finishedAt, latest.pod.metadata?.creationTimestamp),
    };
  }
  if (podPhase === "Running" || podPhase === "Succeeded") {
    const running = latest.container?.state?.running?.startedAt ?? latest.container?.state?.terminated?.startedAt;
    return {
      phase: "running",
      reason: REASON.started,
      message: `attempt ${latest.number} running`,
      attempt: latest.number,
      at: now(running, latest.pod.status?.startTime),
    };
  }
  const unschedulable = latest.pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (unschedulable) {
    const message = schedulingMessage(latest, objects.events ?? []);
    return {
      phase: "queued",
      reason: REASON.unschedulable,
      ...(message !== undefined && { message }),
      attempt: latest.number,
      at: now(queuedSince(latest, objects.events ?? []), latest.pod.metadata?.creationTimestamp),
    };
  }
  if (!isScheduled(latest.pod)) {
    // The scheduler has not decided yet: nothing new has begun, and a transition dated by the pod's
    // creation would move once the PodScheduled condition brings the real time.
    if (previous) return { phase: "retrying", ...failureOf(previous), attempt: latest.number, at: retriedAt(previous, latest) };
    return {
      phase: "pending",
      reason: REASON.created,
      message: `attempt ${latest.number} is waiting for the scheduler`,
      at: now(created, created),
    };
  }
  const waiting = latest.container?.state?.waiting;
  const phase: Phase = previous ? "retrying" : "starting";
  const at = now(scheduledAt(latest.pod), latest.pod.metadata?.creationTimestamp);
  if (waiting?.reason && IMAGE_TROUBLE.has(waiting.reason)) {
    return {
      phase,
      reason: waiting.reason,
      message: waiting.message ?? `attempt ${latest.number}: ${waiting.reason}`,
      attempt: latest.number,
      at,
    };
  }
  if (previous) return { phase, ...failureOf(previous), attempt: latest.number, at };
  return { phase, reason: REASON.containerCreating, message: `attempt ${latest.number} is being started`, attempt: latest.number, at };
}

function failedCause(failed: V1JobCondition, attempts: readonly Attempt[]): Pick<Transition, "reason" | "message"> {
  const last = attempts.at(-1);
  const exit = exitOf(last);
  switch (failed.reason) {
    case "PodFailurePolicy":
      return {
        reason: REASON.configurationError,
        message: `trainer exited with code ${exit.code ?? "unknown"}, a configuration error: not retried`,
      };
    case "DeadlineExceeded":
      return { reason: REASON.deadlineExceeded, message: failed.message ?? "the job ran longer than its maxRuntime" };
    case "BackoffLimitExceeded":
      if (exit.reason === "OOMKilled")
        return { reason: REASON.oomKilled, message: `out of memory on the last of ${attempts.length} attempts` };
      return {
        reason: REASON.backoffLimitExceeded,
        message: `failed ${attempts.length} attempts; the last exited with code ${exit.code ?? "unknown"}`,
      };
    default:
      return { reason: failed.reason ?? "Failed", message: failed.message ?? "the Job failed" };
  }
}

const historySchema = z.object({
  transitions: z.array(transitionSchema),
  attempts: z.number().int().nonnegative(),
  lastExitCode: z.number().int().optional(),
  node: z.string().optional(),
});
export type RecordedHistory = z.infer<typeof historySchema>;

/** The part of a status worth keeping on the Job before its pods are removed. */
export function historyOf(status: JobStatus): RecordedHistory {
  return {
    transitions: status.transitions,
    attempts: status.attempts,
    ...(status.lastExitCode !== undefined && { lastExitCode: status.lastExitCode }),
    ...(status.node !== undefined && { node: status.node }),
  };
}

/** The status the backend sees, rebuilt from the cluster's objects alone. */
export function deriveJobStatus(objects: ClusterObjects, jobId: number): JobStatus {
  const attempts = attemptsOf(objects.pods);
  const current = currentPhase(objects, attempts);
  const latest = attempts.at(-1);
  const recorded = parseAnnotation(historySchema, objects.job.metadata?.annotations?.[ANNOTATION.history]);
  const exitCode =
    [...attempts]
      .reverse()
      .map(exitOf)
      .find((exit) => exit.code !== undefined)?.code ?? recorded?.lastExitCode;
  // The terminal transition's time, so completionTime and the history agree (the Job's own
  // completionTime lags the SuccessCriteriaMet condition and is never set for failures).
  const completion = TERMINAL_PHASES.has(current.phase) ? current.at : undefined;
  const start = objects.job.status?.startTime;
  const node = latest?.pod.spec?.nodeName ?? recorded?.node;
  const derived = transitionsOf(objects, attempts, current);
  // Once the pods are gone only the record remembers them; what came after it is appended.
  const transitions = recorded ? [...recorded.transitions, ...derived.filter((t) => after(t, recorded.transitions))] : derived;
  return {
    jobId,
    executor: "kubernetes",
    name: objects.job.metadata?.name ?? "",
    phase: current.phase,
    reason: current.reason,
    ...(current.message !== undefined && { message: current.message }),
    attempts: Math.max(attempts.length, recorded?.attempts ?? 0),
    ...(exitCode !== undefined && { lastExitCode: exitCode }),
    ...(node !== undefined && { node }),
    ...(start !== undefined && { startTime: iso(start) }),
    ...(completion !== undefined && { completionTime: iso(completion) }),
    transitions,
  };
}

/**
 * Whether a derived transition is news to the record: a different phase from its last entry, and
 * strictly later than it or terminal (a stop is stamped by the dispatcher's clock, the record by the API server's).
 */
function after(transition: Transition, recorded: readonly Transition[]): boolean {
  const last = recorded.at(-1);
  if (!last) return true;
  return transition.phase !== last.phase && (millis(transition.at) > millis(last.at) || TERMINAL_PHASES.has(transition.phase));
}
