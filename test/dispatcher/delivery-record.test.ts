import { describe, expect, it } from "vitest";
import { deliveryRecord, parseDeliveryRecord, resumeIndex } from "../../dispatcher/live/delivery-record.ts";
import { advanceStream, seedStream } from "../../dispatcher/live/status-stream.ts";
import type { Transition } from "../../dispatcher/status/status-model.ts";

const at = (seconds: number) => new Date(Date.UTC(2026, 10, 29, 12, 0, seconds)).toISOString();
const transition = (phase: Transition["phase"], seconds: number, attempt?: number): Transition => ({
  phase,
  reason: "R",
  at: at(seconds),
  ...(attempt !== undefined && { attempt }),
});

const history = [transition("pending", 0), transition("starting", 2, 1), transition("running", 4, 1), transition("completed", 9, 1)];

describe("the delivery record", () => {
  it("names the count and the last transition delivered, and reads back", () => {
    const record = deliveryRecord(3, history[2]);
    expect(record).toEqual({ count: 3, last: { phase: "running", reason: "R", attempt: 1, at: at(4) } });
    expect(parseDeliveryRecord(JSON.stringify(record))).toEqual(record);
    expect(deliveryRecord(0, undefined)).toEqual({ count: 0 });
  });

  it("reads a bare count, or a last transition without its reason, as earlier dispatchers wrote them, and ignores what it cannot read", () => {
    expect(parseDeliveryRecord("2")).toEqual({ count: 2 });
    const older = parseDeliveryRecord(JSON.stringify({ count: 3, last: { phase: "running", at: at(4) } }));
    expect(resumeIndex(older, history)).toBe(3);
    expect(parseDeliveryRecord(undefined)).toBeUndefined();
    expect(parseDeliveryRecord('{"count":-1}')).toBeUndefined();
    expect(parseDeliveryRecord("two")).toBeUndefined();
  });
});

describe("resumeIndex", () => {
  it("resumes after the count when the history only grew", () => {
    expect(resumeIndex(deliveryRecord(3, history[2]), history)).toBe(3);
    expect(resumeIndex(undefined, history)).toBe(0);
  });

  it("follows the last delivered transition when transitions appeared before it", () => {
    const record = deliveryRecord(3, history[2]);
    const withQueued = [history[0], transition("queued", 1), ...history.slice(1)] as Transition[];
    expect(resumeIndex(record, withQueued)).toBe(4);
  });

  it("delivers what happened after the last delivered transition when that one is gone", () => {
    // Someone suspended the Job by hand: the first attempt's pod went with its history; a new one ran later.
    const record = deliveryRecord(3, history[2]);
    const rewritten = [history[0], transition("starting", 20, 1), transition("running", 22, 1)] as Transition[];
    expect(resumeIndex(record, rewritten)).toBe(1);
  });

  it("sends a transition of the lost one's second rather than risk losing it", () => {
    // Suspended and resumed within a second: the new attempt started in the second the old one ran.
    const record = deliveryRecord(3, history[2]);
    const rewritten = [history[0], transition("starting", 4, 1), transition("running", 5, 1)] as Transition[];
    expect(resumeIndex(record, rewritten)).toBe(1);
  });

  it("keeps a bare count within the history", () => {
    expect(resumeIndex({ count: 2 }, history)).toBe(2);
    expect(resumeIndex({ count: 9 }, history)).toBe(4);
  });
});

describe("the status stream's numbers", () => {
  const pulled = (reason: string, message: string): Transition => ({ phase: "starting", reason, message, attempt: 1, at: at(2) });
  const base = [transition("pending", 0), pulled("ContainerCreating", "scheduled")];

  it("gives a change of reason within a phase its own event, and an update of the latest transition's message one too", () => {
    const first = seedStream(undefined, base);
    expect(first.events.map((event) => event.sequence)).toEqual([1, 2]);
    const failing = advanceStream(first.stream, [...base, pulled("ErrImagePull", "pull failed")]);
    expect(failing.events).toMatchObject([{ sequence: 3, update: false, transition: { reason: "ErrImagePull" } }]);
    const backOff = advanceStream(failing.stream, [...base, pulled("ImagePullBackOff", "back-off")]);
    expect(backOff.events).toMatchObject([{ sequence: 4, transition: { reason: "ImagePullBackOff" } }]);
    const reworded = advanceStream(backOff.stream, [...base, pulled("ImagePullBackOff", "back-off 20s")]);
    expect(reworded.events).toMatchObject([{ sequence: 5, update: true, transition: { message: "back-off 20s" } }]);
    // The same derivation again brings nothing.
    expect(advanceStream(reworded.stream, [...base, pulled("ImagePullBackOff", "back-off 20s")]).events).toEqual([]);
  });

  it("numbers a transition that replaces a transient one anew: retrying then failed is two events", () => {
    const retrying: Transition = { phase: "retrying", reason: "Error", attempt: 4, exitCode: 1, at: at(9) };
    const failed: Transition = { phase: "failed", reason: "BackoffLimitExceeded", attempt: 4, exitCode: 1, at: at(9) };
    const shown = seedStream(undefined, [...history.slice(0, 3), retrying]);
    const replaced = advanceStream(shown.stream, [...history.slice(0, 3), failed]);
    expect(replaced.events).toMatchObject([{ sequence: 5, transition: { phase: "failed" }, previous: { phase: "running" } }]);
    expect(replaced.stream.view.map((entry) => entry.sequence)).toEqual([1, 2, 3, 5]);
  });

  it("continues from the delivery record after a restart: the numbers the backend saw, and an update it has not", () => {
    const delivered = deliveryRecord(5, pulled("ImagePullBackOff", "back-off"));
    const now = [...base, pulled("ImagePullBackOff", "back-off 40s")];
    const { stream, events } = seedStream(delivered, now);
    expect(events).toMatchObject([{ sequence: 6, update: true, transition: { message: "back-off 40s" } }]);
    expect(stream.view.map((entry) => entry.sequence)).toEqual([3, 4, 6]);
    // With the numbers the history was pushed with, a restarted replica numbers it the same, not by position.
    const numbered = seedStream(deliveryRecord(5, pulled("ImagePullBackOff", "back-off"), [1, 2, 5]), now);
    expect(numbered.stream.view.map((entry) => entry.sequence)).toEqual([1, 2, 6]);
    expect(numbered.events).toMatchObject([{ sequence: 6, update: true, numbers: [1, 2, 6] }]);
    // Nothing new: nothing to push, and the next event is numbered after the record.
    const quiet = seedStream(deliveryRecord(3, history[2]), history.slice(0, 3));
    expect(quiet.events).toEqual([]);
    expect(advanceStream(quiet.stream, history).events).toMatchObject([{ sequence: 4, transition: { phase: "completed" } }]);
  });
});

describe("the status stream with Kueue's queue", () => {
  const waiting = (position: number | undefined, flavor = "gpu-t4"): Transition => ({
    phase: "queued",
    reason: "WaitingForQuota",
    message: "insufficient unused quota for nvidia.com/gpu in flavor gpu-t4, 8 more needed",
    queue: { name: "project-b", ...(position !== undefined && { position }), flavor },
    at: at(1),
  });
  const created = transition("pending", 0);

  it("pushes a change of position or flavor as an update of the queued transition, and nothing when neither changed", () => {
    const first = seedStream(undefined, [created, waiting(undefined)]);
    expect(first.events.map((event) => event.sequence)).toEqual([1, 2]);
    const placed = advanceStream(first.stream, [created, waiting(2)]);
    expect(placed.events).toMatchObject([{ sequence: 3, update: true, transition: { queue: { position: 2 } } }]);
    const moved = advanceStream(placed.stream, [created, waiting(1)]);
    expect(moved.events).toMatchObject([{ sequence: 4, update: true, transition: { queue: { position: 1 } } }]);
    const otherFlavor = advanceStream(moved.stream, [created, waiting(1, "gpu-a100")]);
    expect(otherFlavor.events).toMatchObject([{ sequence: 5, update: true, transition: { queue: { flavor: "gpu-a100" } } }]);
    expect(advanceStream(otherFlavor.stream, [created, waiting(1, "gpu-a100")]).events).toEqual([]);
  });

  it("records the queue delivered, so a restarted replica pushes only a position the backend has not had", () => {
    const record = parseDeliveryRecord(JSON.stringify(deliveryRecord(3, waiting(2), [1, 3])));
    expect(record?.last?.queue).toEqual({ name: "project-b", position: 2, flavor: "gpu-t4" });
    expect(seedStream(record, [created, waiting(2)]).events).toEqual([]);
    expect(seedStream(record, [created, waiting(1)]).events).toMatchObject([
      { sequence: 4, update: true, transition: { queue: { position: 1 } } },
    ]);
  });
});
