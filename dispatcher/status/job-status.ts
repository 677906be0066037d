/**
 * Derives a training job's status from the cluster's own objects: its Job, its
 * Pods (one per attempt) and their Events. Pure, so it is table-tested, and so a
 * restarted dispatcher rebuilds the same status, transitions included, from
 * nothing but what the API server holds.
 */
import type { CoreV1Event, V1ContainerStatus, V1Job, V1JobCondition, V1Pod } from "@kubernetes/client-node";
import { z } from "zod";
import { ANNOTATION } from "../../charts-ts/labels.ts";
import {
  admissionOf,
  type KueueObjects,
  kueueWait,
  podsOfCurrentAdmission,
  preemptedMessage,
  preemptionOf,
  queuedByKueue,
} from "./kueue-workload.ts";
import { refusalBetween } from "./pod-admission.ts";
import { type JobStatus, type Phase, REASON, TERMINAL_PHASES, type Transition, transitionSchema } from "./status-model.ts";

export interface ClusterObjects {
  readonly job: V1Job;
  /** The Job's pods, any order. */
  readonly pods: readonly V1Pod[];
  /** Events about those pods (FailedScheduling and friends) and about the Job (FailedCreate), any order. */
  readonly events?: readonly CoreV1Event[];
  /** The Job's Kueue Workload and its queue position, for a Job submitted to a Kueue LocalQueue. */
  readonly kueue?: KueueObjects;
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

/** Why an attempt ended badly, as a retry cause. */
function failureOf(attempt: Attempt): Pick<Transition, "reason" | "message"> {
  if (wasDisrupted(attempt.pod))
    return { reason: REASON.preempted, message: `attempt ${attempt.number} was disrupted (preemption, drain or eviction)` };
  const exit = exitOf(attempt);
  if (exit.reason === "OOMKilled")
    return { reason: REASON.oomKilled, message: `attempt ${attempt.number} ran out of memory (exit code ${exit.code})` };
  return { reason: REASON.error, message: `attempt ${attempt.number} exited with code ${exit.code ?? "unknown"}` };
}

/** An attempt that failed and is retried: dated by its container's end, else its pod's deletion, else the next pod's creation. */
function retryOf(failed: Attempt, next: Attempt | undefined): Transition {
  const exit = exitOf(failed);
  return {
    phase: "retrying",
    ...failureOf(failed),
    attempt: failed.number,
    ...(exit.code !== undefined && { exitCode: exit.code }),
    at:
      iso(failed.container?.state?.terminated?.finishedAt) ??
      iso(failed.pod.metadata?.deletionTimestamp) ??
      iso(next?.pod.metadata?.creationTimestamp) ??
      iso(failed.pod.metadata?.creationTimestamp) ??
      new Date(0).toISOString(),
  };
}

function hasFailed(attempt: Attempt): boolean {
  return attempt.pod.status?.phase === "Failed" || (attempt.pod.status?.phase === "Succeeded" && exitOf(attempt).code !== 0);
}

type RuleAction = "FailJob" | "Ignore" | "Count";

/** What the Job's podFailurePolicy does with a failed pod, as the Job controller decides it: the first matching rule. */
function policyActionOf(job: V1Job, attempt: Attempt): RuleAction {
  for (const rule of job.spec?.podFailurePolicy?.rules ?? []) {
    const codes = rule.onExitCodes;
    const matches = codes
      ? (attempt.pod.status?.containerStatuses ?? []).some((container) => {
          const code = container.state?.terminated?.exitCode;
          if (code === undefined || code === 0 || (codes.containerName && container.name !== codes.containerName)) return false;
          return codes.operator === "In" ? codes.values.includes(code) : !codes.values.includes(code);
        })
      : (rule.onPodConditions ?? []).some((pattern) =>
          attempt.pod.status?.conditions?.some((c) => c.type === pattern.type && c.status === (pattern.status ?? "True")),
        );
    if (matches) return rule.action === "FailJob" || rule.action === "Ignore" ? rule.action : "Count";
  }
  return "Count";
}

/**
 * Whether the Job controller is about to fail the Job for this failure: the podFailurePolicy fails
 * it, or it is one more counted failure than backoffLimit allows. Decided from the Job's rules, so
 * a failure that ends the job is never shown as a retry first.
 */
function endsTheJob(job: V1Job, attempts: readonly Attempt[], latest: Attempt): "PodFailurePolicy" | "BackoffLimitExceeded" | undefined {
  const action = policyActionOf(job, latest);
  if (action === "FailJob") return "PodFailurePolicy";
  if (action === "Ignore") return undefined;
  const counted = attempts.filter((attempt) => hasFailed(attempt) && policyActionOf(job, attempt) === "Count").length;
  return counted > (job.spec?.backoffLimit ?? 6) ? "BackoffLimitExceeded" : undefined;
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
function attemptTransitions(attempt: Attempt, events: readonly CoreV1Event[]): Transition[] {
  const out: Transition[] = [];
  const { number: n, pod, container } = attempt;
  const add = (phase: Phase, at: Instant, reason: string, message?: string) => {
    const when = iso(at);
    if (when) out.push({ phase, reason, ...(message !== undefined && { message }), attempt: n, at: when });
  };
  const queued = queuedSince(attempt, events);
  if (queued) add("queued", queued, REASON.unschedulable, schedulingMessage(attempt, events));
  if (isScheduled(pod)) add("starting", scheduledAt(pod), REASON.containerCreating, scheduledMessage(attempt));
  const started = container?.state?.running?.startedAt ?? container?.state?.terminated?.startedAt;
  if (started) add("running", started, REASON.started, `attempt ${n} running`);
  return out;
}

/** A stopped job whose pods have all ended. */
export const STOPPED_MESSAGE = "stopped on request";

const PENDING_MESSAGE = "waiting for the Job controller and the scheduler to give it a pod";
const KUEUE_PENDING_MESSAGE = "waiting for Kueue to queue it";

const pendingMessage = (job: V1Job) => (queuedByKueue(job) ? KUEUE_PENDING_MESSAGE : PENDING_MESSAGE);

const scheduledMessage = (attempt: Attempt) => `attempt ${attempt.number} scheduled on ${attempt.pod.spec?.nodeName ?? "a node"}`;

/** Waiting for the API server to admit a pod: queued on a full quota, pending on any other refusal. */
function refusalTransition(refusal: NonNullable<ReturnType<typeof refusalBetween>>): Transition {
  return {
    phase: refusal.reason === REASON.quotaExceeded ? "queued" : "pending",
    reason: refusal.reason,
    message: refusal.message,
    at: refusal.since,
  };
}

/** One transition per change of (phase, reason, attempt). */
const oneTransition = (a: Transition | undefined, b: Transition) =>
  a?.phase === b.phase && a.reason === b.reason && a.attempt === b.attempt;

/**
 * Everything the cluster says happened to a job, oldest first. Consecutive entries for the same
 * (phase, reason, attempt) are one transition: the first one's time, the latest message, exit code and queue.
 */
function transitionsOf(objects: ClusterObjects, attempts: readonly Attempt[], current: Transition): Transition[] {
  const events = objects.events ?? [];
  const all: Transition[] = [
    {
      phase: "pending",
      reason: REASON.created,
      message: pendingMessage(objects.job),
      at: iso(objects.job.metadata?.creationTimestamp) ?? current.at,
    },
  ];
  // Kueue remembers the latest preemption after re-admitting the job; the preempted run's pods are gone.
  const preemption = preemptionOf(objects.kueue?.workload);
  const preemptedAt = iso(preemption?.lastTransitionTime);
  if (preemption && preemptedAt && !(current.phase === "queued" && current.reason === REASON.preempted))
    all.push({
      phase: "queued",
      reason: REASON.preempted,
      message: preemptedMessage(preemption, objects.kueue?.preemptor),
      at: preemptedAt,
    });
  attempts.forEach((attempt, index) => {
    // The API server may have refused this attempt's pod for a while before it admitted one.
    const refused = refusalBetween(
      objects.job,
      events,
      attempts[index - 1]?.pod.metadata?.creationTimestamp,
      attempt.pod.metadata?.creationTimestamp ?? new Date(0),
    );
    if (refused) all.push(refusalTransition(refused));
    all.push(...attemptTransitions(attempt, events));
    const next = attempts[index + 1];
    if (hasFailed(attempt) && (next || !TERMINAL_PHASES.has(current.phase))) all.push(retryOf(attempt, next));
  });
  all.push(current);
  const sorted = all.map((t, i) => ({ t, i })).sort((a, b) => millis(a.t.at) - millis(b.t.at) || a.i - b.i);
  const folded: Transition[] = [];
  for (const { t } of sorted) {
    const last = folded.at(-1);
    if (last && oneTransition(last, t)) {
      const { message: _message, exitCode: _exitCode, queue: _queue, ...identity } = last;
      folded[folded.length - 1] = {
        ...identity,
        ...(t.message !== undefined && { message: t.message }),
        ...(t.exitCode !== undefined && { exitCode: t.exitCode }),
        ...(t.queue !== undefined && { queue: t.queue }),
      };
    } else folded.push(t);
  }
  return folded;
}

/** The phase now, with its reason and the time it began. */
function currentPhase(objects: ClusterObjects, attempts: readonly Attempt[], recorded: RecordedHistory | undefined): Transition {
  const { job } = objects;
  const latest = attempts.at(-1);
  const now = (at: Instant, fallback: Instant) => iso(at) ?? iso(fallback) ?? new Date(0).toISOString();
  const created = job.metadata?.creationTimestamp;
  const latestExit = exitOf(latest).code;
  const ended = (attempt: Attempt | undefined) => ({
    ...(attempt && { attempt: attempt.number }),
    ...(exitOf(attempt).code !== undefined && { exitCode: exitOf(attempt).code }),
  });

  const stoppedAt = job.metadata?.annotations?.[ANNOTATION.stoppedAt];
  if (stoppedAt !== undefined) {
    const stillRunning = attempts.some((a) => a.pod.status?.phase === "Running" || a.pod.status?.phase === "Pending");
    // Once the pods are gone only the record keeps the stopped attempt's exit code.
    const kept = recorded?.transitions.at(-1);
    const exitCode = latestExit ?? (kept?.phase === "stopped" ? kept.exitCode : undefined);
    const attempt = latest?.number ?? (recorded?.attempts || undefined);
    return {
      phase: "stopped",
      reason: REASON.stoppedByUser,
      message: stillRunning ? "stop requested; waiting for the trainer to checkpoint and exit" : STOPPED_MESSAGE,
      ...(attempt !== undefined && { attempt }),
      ...(exitCode !== undefined && { exitCode }),
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
      ...ended(latest),
      at: now(complete.lastTransitionTime, created),
    };

  const failed = condition(job, "FailureTarget") ?? condition(job, "Failed");
  // The failure's own time when an attempt's end decided it: the same whether the condition has arrived yet or not.
  const endedAt = latest?.container?.state?.terminated?.finishedAt;
  if (failed) {
    const decidedByAttempt = failed.reason === "PodFailurePolicy" || failed.reason === "BackoffLimitExceeded";
    return {
      phase: "failed",
      ...failedCause(failed.reason, failed.message, attempts),
      ...ended(latest),
      at: now(decidedByAttempt ? (endedAt ?? failed.lastTransitionTime) : failed.lastTransitionTime, created),
    };
  }

  // Between Kueue's admission and the first pod: neither waiting for quota nor yet for a node.
  const admission = queuedByKueue(job) ? admissionOf(objects.kueue?.workload) : undefined;
  const admitted: Transition | undefined = admission && {
    phase: "pending",
    reason: REASON.admitted,
    message: admission.message,
    at: now(admission.at, created),
  };
  if (queuedByKueue(job)) {
    const wait = kueueWait(job, objects.kueue);
    if (wait) return { phase: "queued", reason: wait.reason, message: wait.message, queue: wait.queue, at: now(wait.at, created) };
    // Kueue suspends the Job until it admits it: no Workload yet, or admitted and about to resume it.
    if (job.spec?.suspend && !latest)
      return admitted ?? { phase: "pending", reason: REASON.created, message: KUEUE_PENDING_MESSAGE, at: now(created, created) };
  }
  if (job.spec?.suspend) return { phase: "pending", reason: REASON.suspended, message: "the Job is suspended", at: now(created, created) };
  const active = latest && !hasFailed(latest) && latest.pod.status?.phase !== "Succeeded";
  const refusal = active ? undefined : refusalBetween(job, objects.events ?? [], latest?.pod.metadata?.creationTimestamp);
  if (refusal) return refusalTransition(refusal);
  if (!latest) return admitted ?? { phase: "pending", reason: REASON.created, message: pendingMessage(job), at: now(created, created) };

  const podPhase = latest.pod.status?.phase;
  const previous = attempts.at(-2);
  if (hasFailed(latest)) {
    const verdict = endsTheJob(job, attempts, latest);
    if (verdict)
      return {
        phase: "failed",
        ...failedCause(verdict, undefined, attempts),
        ...ended(latest),
        at: now(endedAt, latest.pod.metadata?.creationTimestamp),
      };
    return retryOf(latest, undefined);
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
    if (previous) return retryOf(previous, latest);
    return { phase: "pending", reason: REASON.created, message: pendingMessage(job), at: now(created, created) };
  }
  const waiting = latest.container?.state?.waiting;
  const at = now(scheduledAt(latest.pod), latest.pod.metadata?.creationTimestamp);
  if (waiting?.reason && IMAGE_TROUBLE.has(waiting.reason)) {
    return {
      phase: "starting",
      reason: waiting.reason,
      message: waiting.message ?? `attempt ${latest.number}: ${waiting.reason}`,
      attempt: latest.number,
      at,
    };
  }
  return { phase: "starting", reason: REASON.containerCreating, message: scheduledMessage(latest), attempt: latest.number, at };
}

function failedCause(
  reason: string | undefined,
  message: string | undefined,
  attempts: readonly Attempt[],
): Pick<Transition, "reason" | "message"> {
  const last = attempts.at(-1);
  const exit = exitOf(last);
  switch (reason) {
    case "PodFailurePolicy":
      return {
        reason: REASON.configurationError,
        message: `trainer exited with code ${exit.code ?? "unknown"}, a configuration error: not retried`,
      };
    case "DeadlineExceeded":
      return { reason: REASON.deadlineExceeded, message: message ?? "the job ran longer than its maxRuntime" };
    case "BackoffLimitExceeded":
      if (exit.reason === "OOMKilled")
        return { reason: REASON.oomKilled, message: `out of memory on the last of ${attempts.length} attempts` };
      return {
        reason: REASON.backoffLimitExceeded,
        message: `failed ${attempts.length} attempts; the last exited with code ${exit.code ?? "unknown"}`,
      };
    default:
      return { reason: reason ?? "Failed", message: message ?? "the Job failed" };
  }
}

const historySchema = z.object({
  transitions: z.array(transitionSchema),
  attempts: z.number().int().nonnegative(),
  lastExitCode: z.number().int().optional(),
  node: z.string().optional(),
});
export type RecordedHistory = z.infer<typeof historySchema>;

/** The history the dispatcher recorded on a Job (stop, fail-fast), if it can be trusted. */
export function parseRecordedHistory(value: string | undefined): RecordedHistory | undefined {
  return parseAnnotation(historySchema, value);
}

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
  const attempts = attemptsOf(objects.kueue ? podsOfCurrentAdmission(objects.pods, objects.kueue.workload) : objects.pods);
  const recorded = parseRecordedHistory(objects.job.metadata?.annotations?.[ANNOTATION.history]);
  const current = currentPhase(objects, attempts, recorded);
  const latest = attempts.at(-1);
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
    ...(current.queue !== undefined && { queue: current.queue }),
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
