import { describe, expect, it } from "vitest";
import { deliveryRecord, parseDeliveryRecord, resumeIndex } from "../../dispatcher/live/delivery-record.ts";
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
    expect(record).toEqual({ count: 3, last: { phase: "running", at: at(4) } });
    expect(parseDeliveryRecord(JSON.stringify(record))).toEqual(record);
    expect(deliveryRecord(0, undefined)).toEqual({ count: 0 });
  });

  it("reads a bare count, as earlier dispatchers wrote it, and ignores what it cannot read", () => {
    expect(parseDeliveryRecord("2")).toEqual({ count: 2 });
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
