/**
 * Tells an identical resubmission from a conflicting one: both executors store
 * the normalized request as canonical JSON and compare against it.
 */
import { canonicalJson } from "../charts-ts/canonical-json.ts";
import type { TrainingRequest } from "../charts-ts/request.ts";

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
