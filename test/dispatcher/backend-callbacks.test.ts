import { describe, expect, it } from "vitest";
import { logCallbackOf } from "../../dispatcher/live/backend-callbacks.ts";

const at = "2026-11-29T12:00:00.000Z";

describe("logCallbackOf", () => {
  it("writes a transition as the dispatcher's line in the job's log, with the plan's levels", () => {
    expect(logCallbackOf({ phase: "queued", reason: "Unschedulable", message: "0/3 nodes are available", attempt: 1, at })).toEqual({
      level: "INFO",
      message: "dispatcher: queued (attempt 1), Unschedulable: 0/3 nodes are available",
    });
    expect(logCallbackOf({ phase: "retrying", reason: "OOMKilled", attempt: 2, exitCode: 137, at }).level).toBe("WARNING");
    expect(logCallbackOf({ phase: "failed", reason: "NoNodeFits", message: "no node could ever run this job", at })).toEqual({
      level: "ERROR",
      message: "dispatcher: failed, NoNodeFits: no node could ever run this job",
    });
    expect(logCallbackOf({ phase: "pending", reason: "Created", at })).toEqual({ level: "INFO", message: "dispatcher: pending, Created" });
  });
});
