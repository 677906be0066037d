/**
 * One ordered stream of status events per job, the one thing SSE, the backend callbacks and
 * the metrics consume, so what is pushed is what GET says. An event is
 *   - a new transition: the derived history gained a (phase, reason, attempt) it did not have,
 *     including one that replaces a transient entry (retrying -> failed at the same place), or
 *   - an update: the latest transition's message, exit code or queue (a Kueue position or flavor) changed.
 * Each gets the job's next sequence number; a number never stands for two events. The numbers
 * continue from the delivery record on the Job (delivery-record.ts), so a restarted replica, or
 * another one, goes on from what the backend acknowledged instead of counting from 1 again.
 */
import type { V1Job } from "@kubernetes/client-node";
import { ANNOTATION } from "../../charts-ts/labels.ts";
import type { Transition } from "../status/status-model.ts";
import { type DeliveryRecord, parseDeliveryRecord, resumeIndex, sameTransition } from "./delivery-record.ts";
import { type JobUpdate, type JobWatch, jobKeyOf } from "./job-watch.ts";

export interface Sequenced {
  readonly sequence: number;
  readonly transition: Transition;
}

export interface StreamEvent extends Sequenced {
  readonly jobId: number;
  readonly job: V1Job;
  /** When this replica pushed it (epoch ms): an update's transition began long before. */
  readonly pushedAt: number;
  /** An update of the latest transition's message, exit code or queue rather than a new transition. */
  readonly update: boolean;
  /** The transition before this one in the job's history, for the metrics' from-phase and waits. */
  readonly previous: Transition | undefined;
  /** The history up to and including this transition. */
  readonly history: readonly Transition[];
  /** The sequence number of each entry of `history`, as pushed. */
  readonly numbers: readonly number[];
}

/** A job's stream: the last number given, and the current history with each entry's number. */
export interface JobStream {
  readonly count: number;
  readonly view: readonly Sequenced[];
}

export type Emitted = Omit<StreamEvent, "jobId" | "job" | "pushedAt">;

type Content = Pick<Transition, "message" | "exitCode" | "queue">;

const sameQueue = (a: Content["queue"], b: Content["queue"]) =>
  a?.name === b?.name && a?.position === b?.position && a?.flavor === b?.flavor;

const contentDiffers = (a: Content, b: Content) => a.message !== b.message || a.exitCode !== b.exitCode || !sameQueue(a.queue, b.queue);

function emitted(view: readonly Sequenced[], index: number, update: boolean): Emitted {
  const entry = view[index] as Sequenced;
  return {
    ...entry,
    update,
    previous: view[index - 1]?.transition,
    history: view.slice(0, index + 1).map((item) => item.transition),
    numbers: view.slice(0, index + 1).map((item) => item.sequence),
  };
}

/**
 * A job's stream as a replica first sees it: the history before the record's last delivered
 * transition is numbered up to the record's count; an update of that transition since, and
 * everything after it, are events still to push.
 */
export function seedStream(
  record: DeliveryRecord | undefined,
  transitions: readonly Transition[],
): { stream: JobStream; events: Emitted[] } {
  const delivered = resumeIndex(record, transitions);
  const offset = Math.max(0, (record?.count ?? 0) - delivered);
  // The numbers the record kept when the history it names is still there; else by position below the count.
  const kept = record?.numbers?.length === delivered && record.numbers.at(-1) === record.count ? record.numbers : undefined;
  const view: Sequenced[] = transitions.map((transition, index) => ({ sequence: kept?.[index] ?? index + 1 + offset, transition }));
  let count = record ? Math.max(record.count, delivered + offset) : 0;
  const events: Emitted[] = [];
  const last = record?.last;
  const lastDelivered = view[delivered - 1];
  if (last && lastDelivered && delivered === transitions.length && contentDiffers(lastDelivered.transition, last)) {
    count += 1;
    view[delivered - 1] = { ...lastDelivered, sequence: count };
    events.push(emitted(view, delivered - 1, true));
  }
  for (let index = delivered; index < view.length; index += 1) {
    count += 1;
    view[index] = { sequence: count, transition: transitions[index] as Transition };
    events.push(emitted(view, index, false));
  }
  return { stream: { count, view }, events };
}

/** The events a new derivation brings, against what the stream already holds. */
export function advanceStream(stream: JobStream, transitions: readonly Transition[]): { stream: JobStream; events: Emitted[] } {
  let common = 0;
  while (
    common < transitions.length &&
    common < stream.view.length &&
    sameTransition(stream.view[common]?.transition, transitions[common] as Transition)
  )
    common += 1;
  let count = stream.count;
  const events: Emitted[] = [];
  const view: Sequenced[] = transitions.slice(0, common).map((transition, index) => ({
    sequence: (stream.view[index] as Sequenced).sequence,
    transition,
  }));
  const latest = transitions.length - 1;
  // Only the latest transition's changes are news; an older entry's detail is taken in silently.
  if (
    common > 0 &&
    common - 1 === latest &&
    contentDiffers((stream.view[latest] as Sequenced).transition, transitions[latest] as Transition)
  ) {
    count += 1;
    view[latest] = { sequence: count, transition: transitions[latest] as Transition };
    events.push(emitted(view, latest, true));
  }
  for (let index = common; index < transitions.length; index += 1) {
    count += 1;
    view.push({ sequence: count, transition: transitions[index] as Transition });
    events.push(emitted(view, index, false));
  }
  return { stream: { count, view }, events };
}

/**
 * Where another replica's acknowledged record is ahead of this one's numbers (it saw an event this
 * one did not), this one continues from it: its count, and the record's number on the transition
 * it names.
 */
function adopt(stream: JobStream, record: DeliveryRecord): JobStream {
  const last = record.last;
  return {
    count: record.count,
    view: stream.view.map((entry) => (last && sameTransition(entry.transition, last) ? { ...entry, sequence: record.count } : entry)),
  };
}

type Listener = (event: StreamEvent) => void;

/** Events kept per job for subscribers who catch up: enough for any job's life; the oldest go first. */
const LOG_LIMIT = 200;

export class StatusStream {
  private readonly streams = new Map<string, JobStream>();
  /**
   * What each job's stream pushed, in order, superseded events included (an ErrImagePull that
   * became ImagePullBackOff): a subscriber catching up gets what a live one got. A job first seen
   * by this replica starts from its history as derived.
   */
  private readonly logs = new Map<string, Sequenced[]>();
  private readonly listeners = new Set<Listener>();
  private readonly watch: JobWatch;

  constructor(watch: JobWatch) {
    this.watch = watch;
    watch.onUpdate((update) => this.advance(update));
    watch.onRemoved((job) => {
      this.streams.delete(jobKeyOf(job));
      this.logs.delete(jobKeyOf(job));
    });
  }

  /** Hears every event of every job, in order per job. */
  onEvent(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Each tracked job's events so far: what a new subscriber catches up from. */
  current(): { job: V1Job; jobId: number; events: readonly Sequenced[] }[] {
    return this.watch.current().flatMap(({ job, status }) => {
      const events = this.logs.get(jobKeyOf(job));
      return events ? [{ job, jobId: status.jobId, events }] : [];
    });
  }

  private advance({ job, status }: JobUpdate): void {
    // A Job being deleted loses its pods, not its history: what that changes in a derivation is no news.
    if (job.metadata?.deletionTimestamp) return;
    const key = jobKeyOf(job);
    const record = parseDeliveryRecord(job.metadata?.annotations?.[ANNOTATION.deliveredTransitions]);
    const known = this.streams.get(key);
    const next = known
      ? advanceStream(record && record.count > known.count ? adopt(known, record) : known, status.transitions)
      : seedStream(record, status.transitions);
    this.streams.set(key, next.stream);
    const log = known
      ? (this.logs.get(key) ?? [])
      : next.stream.view.filter((entry) => !next.events.some((event) => event.sequence === entry.sequence));
    log.push(...next.events.map(({ sequence, transition }) => ({ sequence, transition })));
    this.logs.set(key, log.slice(-LOG_LIMIT));
    for (const event of next.events) {
      const full = { ...event, jobId: status.jobId, job, pushedAt: Date.now() };
      for (const listener of this.listeners) listener(full);
    }
  }
}
