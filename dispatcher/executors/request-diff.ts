/**
 * Tells an identical resubmission from a conflicting one: both executors store
 * the normalized request as canonical JSON and compare against it.
 */
import { canonicalJson } from "../../charts-ts/canonical-json.ts";
import type { TrainingRequest } from "../../charts-ts/request.ts";
import { ApiError } from "../api-error.ts";

/** Dotted paths whose values differ between two JSON values, e.g. ["epochs", "resources.gpu"]. */
export function differingFields(before: unknown, after: unknown, path = ""): string[] {
  const isObject = (value: unknown): value is Record<string, unknown> =>
    value !== null && typeof value === "object" && !Array.isArray(value);
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => differingFields(before[key], after[key], path ? `${path}.${key}` : key));
  }
  return canonicalJson(before) === canonicalJson(after) ? [] : [path];
}

/** The fields in which a new request differs from the stored canonical one. */
export function requestConflicts(storedCanonical: string, request: TrainingRequest): string[] {
  return differingFields(JSON.parse(storedCanonical), JSON.parse(canonicalJson(request)));
}

/** Throws the 409 that names the differing fields; returns when there are none. */
export function assertSameRequest(jobId: number, differing: readonly string[]): void {
  if (differing.length === 0) return;
  throw new ApiError(
    409,
    "conflict",
    `job ${jobId} already exists with a different request; differing fields: ${differing.join(", ")}`,
    differing[0],
  );
}
