/**
 * What the backend sees of a training job: the phase model of DESIGN.md as zod
 * schemas, so the TypeScript types and the OpenAPI document come from one place.
 */
import { z } from "zod";
import { EXECUTORS } from "../../charts-ts/request.ts";

export const PHASES = ["pending", "queued", "starting", "running", "retrying", "completed", "failed", "stopped"] as const;
export type Phase = (typeof PHASES)[number];

export const TERMINAL_PHASES: ReadonlySet<Phase> = new Set(["completed", "failed", "stopped"]);

/** Machine-readable reasons; `message` carries the human detail (the scheduler's words, the exit code). */
export const REASON = {
  created: "Created",
  unschedulable: "Unschedulable",
  /** Failed: no node, present or that a pool could add, is large enough for the job. */
  noNodeFits: "NoNodeFits",
  containerCreating: "ContainerCreating",
  started: "Started",
  error: "Error",
  oomKilled: "OOMKilled",
  preempted: "Preempted",
  succeeded: "Succeeded",
  backoffLimitExceeded: "BackoffLimitExceeded",
  deadlineExceeded: "DeadlineExceeded",
  configurationError: "ConfigurationError",
  stoppedByUser: "StoppedByUser",
  suspended: "Suspended",
  lost: "Lost",
  /** Waiting: the namespace's ResourceQuota refuses the pod until other jobs free their share. */
  quotaExceeded: "QuotaExceeded",
  /** The API server refuses the pod (LimitRange, Pod Security, a webhook); failed at once when it never could admit it. */
  podRejected: "PodRejected",
  /** Admitted by Kueue (quota reserved), no pod yet. */
  admitted: "Admitted",
  /** Queued by Kueue: its queue has no room now (Kueue's message says which flavor and how much more is needed). */
  waitingForQuota: "WaitingForQuota",
  /** Kueue's verdict that no flavor can ever take the job (too large for any quota, no matching flavor): it fails fast. */
  inadmissible: "Inadmissible",
} as const;

/** Where a job waits in Kueue: its LocalQueue, its place there and the flavor it waits for. */
export const queueSchema = z.object({
  /** The LocalQueue, in the job's namespace. */
  name: z.string(),
  /** 1 = next to be admitted; absent until Kueue's visibility API has listed the job. */
  position: z.number().int().positive().optional(),
  /** The ResourceFlavor whose quota the job waits for (`gpu-t4`, `cpu`); absent for a GPU job of any type until Kueue names one. */
  flavor: z.string().optional(),
});
export type Queue = z.infer<typeof queueSchema>;

export const transitionSchema = z.object({
  phase: z.enum(PHASES),
  reason: z.string(),
  message: z.string().optional(),
  /** 1-based attempt the transition belongs to, when it belongs to one. */
  attempt: z.number().int().positive().optional(),
  /** The exit code of the attempt that ended with this transition. */
  exitCode: z.number().int().optional(),
  /** While queued by Kueue: the queue, position and flavor as they were at this transition's latest update. */
  queue: queueSchema.optional(),
  at: z.iso.datetime(),
});
export type Transition = z.infer<typeof transitionSchema>;

export const jobStatusSchema = z.object({
  jobId: z.number().int().positive(),
  executor: z.enum(EXECUTORS),
  /** Kubernetes Job name, or the local run's name. */
  name: z.string(),
  phase: z.enum(PHASES),
  reason: z.string(),
  message: z.string().optional(),
  /** Attempts started so far (pods created). */
  attempts: z.number().int().nonnegative(),
  lastExitCode: z.number().int().optional(),
  node: z.string().optional(),
  startTime: z.iso.datetime().optional(),
  completionTime: z.iso.datetime().optional(),
  /** While queued by Kueue (reasons WaitingForQuota, Preempted, Inadmissible): where it waits. */
  queue: queueSchema.optional(),
  transitions: z.array(transitionSchema),
});
export type JobStatus = z.infer<typeof jobStatusSchema>;
