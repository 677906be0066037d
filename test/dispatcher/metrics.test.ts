// The dispatcher's Prometheus metrics from realistic status updates: each transition counted
// once however often a job is re-derived, waits observed, GPU-seconds by project.
import type { V1Job } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { trainingRequest } from "../../charts-ts/request.ts";
import { platformSettings } from "../../charts-ts/settings.ts";
import { renderTrainingJob } from "../../charts-ts/training-job-chart.ts";
import type { JobUpdate } from "../../dispatcher/live/job-watch.ts";
import { DispatcherMetrics } from "../../dispatcher/live/metrics.ts";
import { advanceStream, type JobStream, seedStream } from "../../dispatcher/live/status-stream.ts";
import type { JobStatus, Transition } from "../../dispatcher/status/status-model.ts";

const job = renderTrainingJob(
  trainingRequest({
    jobId: 9,
    projectId: 4,
    framework: "timm",
    taskType: "image_classification",
    modelName: "resnet18",
    dataset: { path: "d", format: "imagefolder" },
    resources: { gpu: 2 },
  }),
  platformSettings({}),
) as V1Job;

const t0 = Date.parse("2026-11-29T10:00:00Z");
const at = (seconds: number) => new Date(t0 + seconds * 1000).toISOString();
const transition = (phase: Transition["phase"], seconds: number, reason = "R"): Transition => ({ phase, reason, at: at(seconds) });

function update(transitions: Transition[], extra: Partial<JobStatus> = {}, of: V1Job = job): JobUpdate {
  const last = transitions.at(-1) as Transition;
  return {
    job: of,
    status: {
      jobId: 9,
      executor: "kubernetes",
      name: "training-job-9",
      phase: last.phase,
      reason: last.reason,
      attempts: 1,
      transitions,
      ...extra,
    },
    events: [],
  };
}

/** Feeds each derivation through the status stream, as live-status.ts does, and the metrics hear its events. */
function streamInto(metrics: DispatcherMetrics) {
  const streams = new Map<V1Job, JobStream>();
  return (next: JobUpdate) => {
    const known = streams.get(next.job);
    const { stream, events } = known ? advanceStream(known, next.status.transitions) : seedStream(undefined, next.status.transitions);
    streams.set(next.job, stream);
    for (const event of events) metrics.observe({ ...event, jobId: next.status.jobId, job: next.job, pushedAt: Date.now() });
  };
}

const value = (text: string, series: string) =>
  Number(
    text
      .split("\n")
      .find((line) => line.startsWith(`${series} `))
      ?.split(" ")[1],
  );

describe("DispatcherMetrics", () => {
  it("counts transitions once, observes waits and retries, and accounts GPU-seconds by project", async () => {
    const metrics = new DispatcherMetrics();
    const history = [
      transition("pending", 0, "Created"),
      transition("queued", 1, "Unschedulable"),
      transition("starting", 31, "ContainerCreating"),
      transition("running", 40, "Started"),
      transition("retrying", 100, "OOMKilled"),
      transition("running", 110, "Started"),
      transition("completed", 200, "Succeeded"),
    ];
    let latest: JobUpdate[] = [];
    metrics.track(() => latest);
    const feed = streamInto(metrics);
    // The watch re-derives a job on every change: the same prefix arrives many times.
    for (let n = 1; n <= history.length; n += 1) {
      const next = update(history.slice(0, n), { startTime: at(40), ...(n === history.length && { completionTime: at(200) }) });
      feed(next);
      feed(next);
      latest = [next];
    }
    metrics.submission("timm", "created", 0.02);
    const text = await metrics.registry.metrics();

    expect(value(text, 'training_dispatcher_transitions_total{from="queued",to="starting",reason="ContainerCreating"}')).toBe(1);
    expect(value(text, 'training_dispatcher_transitions_total{from="retrying",to="running",reason="Started"}')).toBe(1);
    expect(value(text, 'training_dispatcher_retries_total{cause="OOMKilled"}')).toBe(1);
    expect(value(text, "training_dispatcher_queued_duration_seconds_sum")).toBe(30);
    // From creation to the first running only; the second running is a retry.
    expect(value(text, "training_dispatcher_time_to_running_seconds_count")).toBe(1);
    expect(value(text, "training_dispatcher_time_to_running_seconds_sum")).toBe(40);
    expect(value(text, 'training_dispatcher_jobs{phase="completed"}')).toBe(1);
    expect(value(text, 'training_dispatcher_jobs{phase="running"}')).toBe(0);
    // 2 GPUs from 40 s to 200 s.
    expect(value(text, 'training_dispatcher_gpu_seconds_total{project="4"}')).toBe(320);
    expect(value(text, 'training_dispatcher_submissions_total{framework="timm",result="created"}')).toBe(1);

    // A second scrape adds nothing for a finished job.
    expect(value(await metrics.registry.metrics(), 'training_dispatcher_gpu_seconds_total{project="4"}')).toBe(320);
  });

  it("counts a Job created again under a deleted one's name as a new job", async () => {
    const metrics = new DispatcherMetrics();
    const first = { ...job, metadata: { ...job.metadata, uid: "uid-1" } };
    const again = { ...job, metadata: { ...job.metadata, uid: "uid-2" } };
    const run = [transition("pending", 0, "Created"), transition("running", 5, "Started")];
    const feed = streamInto(metrics);
    feed(update(run, {}, first));
    metrics.forget(first);
    feed(update(run, {}, again));
    expect(
      value(await metrics.registry.metrics(), 'training_dispatcher_transitions_total{from="pending",to="running",reason="Started"}'),
    ).toBe(2);
  });
});
