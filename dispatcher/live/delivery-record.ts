/**
 * What the backend has acknowledged of a job, as recorded on its Job (annotation
 * `training-platform.io/delivered-transitions`), and where delivery resumes from it.
 * A count alone would assume the derived history only ever grows at its end; it does
 * not when the pods it came from go without the dispatcher writing their history
 * (someone suspends the Job by hand) or a newer dispatcher derives it differently. So
 * the record also names the last transition delivered, and resuming finds that one.
 */
import { z } from "zod";
import { parseAnnotation } from "../status/job-status.ts";
import { queueSchema, type Transition } from "../status/status-model.ts";

const deliveryRecordSchema = z.object({
  count: z.number().int().nonnegative(),
  /** The last event acknowledged: the transition, with the message, exit code and queue it was delivered with. */
  last: z
    .object({
      phase: z.string(),
      /** Absent in records written before reasons told transitions apart. */
      reason: z.string().optional(),
      attempt: z.number().int().optional(),
      message: z.string().optional(),
      exitCode: z.number().int().optional(),
      /** The Kueue queue it was delivered with (an update of the position is news). */
      queue: queueSchema.optional(),
      at: z.iso.datetime(),
    })
    .optional(),
  /**
   * The sequence number of each transition of the history up to `last`, as they were pushed, so a
   * replica starting over numbers that history as it was numbered, not by position.
   */
  numbers: z.array(z.number().int().positive()).optional(),
});
export type DeliveryRecord = z.infer<typeof deliveryRecordSchema>;

/** The record, from its annotation: JSON, or a bare count as dispatchers before it wrote. */
export function parseDeliveryRecord(value: string | undefined): DeliveryRecord | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return { count: Number(value) };
  return parseAnnotation(deliveryRecordSchema, value);
}

/** The record of the event numbered `count` delivered, `last` its transition, `numbers` those of the history up to it. */
export function deliveryRecord(count: number, last: Transition | undefined, numbers?: readonly number[]): DeliveryRecord {
  if (!last) return { count };
  const { phase, reason, attempt, message, exitCode, queue, at } = last;
  return {
    count,
    last: {
      phase,
      reason,
      ...(attempt !== undefined && { attempt }),
      ...(message !== undefined && { message }),
      ...(exitCode !== undefined && { exitCode }),
      ...(queue !== undefined && { queue }),
      at,
    },
    ...(numbers !== undefined && { numbers: [...numbers] }),
  };
}

/** One transition: the same (phase, reason, attempt) begun at the same time; its message and exit code may change. */
export function sameTransition(transition: Transition | undefined, other: Transition | NonNullable<DeliveryRecord["last"]>): boolean {
  if (transition?.phase !== other.phase || transition.at !== other.at) return false;
  return other.reason === undefined || (transition.reason === other.reason && transition.attempt === other.attempt);
}

/**
 * How many of `transitions` count as delivered: up to and including the recorded last
 * one where it still is; if it has moved, up to where it is now; if it is gone, every
 * transition earlier than it. Times have whole seconds, so one in the same second as
 * the lost one is sent (again, perhaps: at least once, never lost).
 */
export function resumeIndex(record: DeliveryRecord | undefined, transitions: readonly Transition[]): number {
  if (!record) return 0;
  const { count, last } = record;
  if (!last) return Math.min(count, transitions.length);
  if (sameTransition(transitions[count - 1], last)) return count;
  const moved = transitions.findLastIndex((transition) => sameTransition(transition, last));
  if (moved >= 0) return moved + 1;
  const deliveredUntil = Date.parse(last.at);
  const earlier = transitions.findLastIndex((transition) => Date.parse(transition.at) < deliveredUntil);
  return earlier + 1;
}
