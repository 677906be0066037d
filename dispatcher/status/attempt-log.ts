/** Where an attempt's log is, once some of a job's pods may be gone. */
import type { V1Pod } from "@kubernetes/client-node";
import type { JobStatus } from "./status-model.ts";

/**
 * Which pod holds an attempt's log, numbered as GET counts attempts: the pods present are the
 * latest attempts, the record on the Job remembers earlier ones whose pods are gone.
 */
export function attemptLog(
  status: JobStatus,
  pods: readonly V1Pod[],
  requested: number | undefined,
):
  | { readonly kind: "pod"; readonly pod: V1Pod; readonly attempt: number }
  | { readonly kind: "no-such-attempt"; readonly attempts: number }
  | { readonly kind: "no-output-yet"; readonly status: JobStatus }
  | { readonly kind: "pods-gone"; readonly attempt: number; readonly exitCode?: number; readonly status: JobStatus } {
  const attempts = Math.max(status.attempts, pods.length);
  if (requested !== undefined && requested > attempts) return { kind: "no-such-attempt", attempts };
  const attempt = requested ?? attempts;
  if (attempt === 0) return { kind: "no-output-yet", status };
  const sorted = [...pods].sort(
    (a, b) => new Date(a.metadata?.creationTimestamp ?? 0).getTime() - new Date(b.metadata?.creationTimestamp ?? 0).getTime(),
  );
  const pod = sorted[attempt - 1 - (attempts - sorted.length)];
  if (pod) return { kind: "pod", pod, attempt };
  const exitCode =
    status.transitions.findLast((transition) => transition.attempt === attempt && transition.exitCode !== undefined)?.exitCode ??
    (attempt === attempts ? status.lastExitCode : undefined);
  return { kind: "pods-gone", attempt, ...(exitCode !== undefined && { exitCode }), status };
}
