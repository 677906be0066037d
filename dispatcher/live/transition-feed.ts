/**
 * The status stream (status-stream.ts) for server-sent events. Positions are the stream's
 * sequence numbers, the ones the backend's callbacks carry, which continue from what the Job
 * records, so a client resumes with Last-Event-ID even from a different or restarted replica:
 *   per job:  id = the event's sequence in that job
 *   all jobs: id = `<at in ms>-<jobId>-<sequence>`, ordered by time, then job, then sequence
 */
import type { V1Job } from "@kubernetes/client-node";
import { LABEL } from "../../charts-ts/labels.ts";
import type { Phase, Transition } from "../status/status-model.ts";
import type { StatusStream } from "./status-stream.ts";

export interface FeedEvent {
  readonly id: string;
  readonly jobId: number;
  readonly sequence: number;
  readonly transition: Transition;
  readonly job: V1Job;
}

export interface FeedFilter {
  readonly jobId?: number;
  readonly projectId?: number;
  readonly framework?: string;
  /** Only transitions into this phase. */
  readonly phase?: Phase;
}

type Position = readonly [atMs: number, jobId: number, sequence: number];

export function globalEventId(event: Pick<FeedEvent, "jobId" | "sequence" | "transition">): string {
  return `${Date.parse(event.transition.at)}-${event.jobId}-${event.sequence}`;
}

function parseGlobalId(id: string): Position | undefined {
  const match = /^(\d+)-(\d+)-(\d+)$/.exec(id);
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined;
}

function after(a: Position, b: Position): boolean {
  return a[0] !== b[0] ? a[0] > b[0] : a[1] !== b[1] ? a[1] > b[1] : a[2] > b[2];
}

export function matches(filter: FeedFilter, event: Omit<FeedEvent, "id">): boolean {
  const labels = event.job.metadata?.labels ?? {};
  return (
    (filter.jobId === undefined || event.jobId === filter.jobId) &&
    (filter.projectId === undefined || labels[LABEL.projectId] === String(filter.projectId)) &&
    (filter.framework === undefined || labels[LABEL.framework] === filter.framework) &&
    (filter.phase === undefined || event.transition.phase === filter.phase)
  );
}

type Subscriber = (event: Omit<FeedEvent, "id">) => void;

export class TransitionFeed {
  private readonly stream: StatusStream;
  private readonly subscribers = new Set<Subscriber>();

  constructor(stream: StatusStream) {
    this.stream = stream;
    stream.onEvent(({ jobId, sequence, transition, job }) => {
      for (const subscriber of this.subscribers) subscriber({ jobId, sequence, transition, job });
    });
  }

  /**
   * What a client missed since `lastEventId` (everything when absent), then live
   * events, each once, in order. Returns the unsubscribe function.
   */
  subscribe(filter: FeedFilter, lastEventId: string | undefined, send: (event: FeedEvent) => void): () => void {
    const perJob = filter.jobId !== undefined;
    const idOf = (event: Omit<FeedEvent, "id">) => (perJob ? String(event.sequence) : globalEventId(event));
    const resumeSequence = perJob && lastEventId !== undefined && /^\d+$/.test(lastEventId) ? Number(lastEventId) : 0;
    const resumePosition = !perJob && lastEventId !== undefined ? parseGlobalId(lastEventId) : undefined;
    const isNew = (event: Omit<FeedEvent, "id">) =>
      perJob
        ? event.sequence > resumeSequence
        : resumePosition === undefined || after([Date.parse(event.transition.at), event.jobId, event.sequence], resumePosition);

    const backlog = this.stream
      .current()
      .flatMap(({ job, jobId, events }) => events.map(({ sequence, transition }) => ({ jobId, sequence, transition, job })))
      .filter((event) => matches(filter, event) && isNew(event))
      .sort((a, b) =>
        perJob
          ? a.sequence - b.sequence
          : Date.parse(a.transition.at) - Date.parse(b.transition.at) || a.jobId - b.jobId || a.sequence - b.sequence,
      );
    // Live events already in the backlog (same job and sequence) are not sent twice.
    const sent = new Map<number, number>();
    const deliver = (event: Omit<FeedEvent, "id">) => {
      if ((sent.get(event.jobId) ?? 0) >= event.sequence) return;
      sent.set(event.jobId, event.sequence);
      send({ ...event, id: idOf(event) });
    };
    for (const event of backlog) deliver(event);
    const subscriber: Subscriber = (event) => {
      if (matches(filter, event) && isNew(event)) deliver(event);
    };
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }
}
