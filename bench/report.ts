/** results.json and results.md from a run's outcomes; the figures table printed at the end. */
import { spawnSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BenchConfig, PhaseName } from "./config.ts";
import type { AdmissionResult, AdmissionStream } from "./phases/admission.ts";
import type { ApiServerResult } from "./phases/apiserver.ts";
import type { MemoryResult, MemoryVariant } from "./phases/memory.ts";
import type { PropagationResult } from "./phases/propagation.ts";
import type { SubmitResult } from "./phases/submit.ts";
import type { SustainedResult } from "./phases/sustained.ts";
import type { Summary } from "./stats.ts";

export interface PhaseOutcome<T> {
  readonly status: "ok" | "failed";
  readonly seconds: number;
  readonly result?: T;
  readonly error?: string;
}

export interface PhaseResults {
  submit?: PhaseOutcome<SubmitResult>;
  sustained?: PhaseOutcome<SustainedResult>;
  admission?: PhaseOutcome<AdmissionResult>;
  propagation?: PhaseOutcome<PropagationResult>;
  apiserver?: PhaseOutcome<ApiServerResult>;
  memory?: PhaseOutcome<MemoryResult>;
}

export interface Environment {
  readonly node: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGB: number;
  readonly loadAverageAtStart: readonly number[];
  loadAverageAtEnd?: readonly number[];
  kubernetes?: string;
  cluster?: string;
}

export interface Target {
  readonly id: string;
  readonly target: string;
  readonly figure: string;
  readonly verdict: "met" | "not met" | "reported" | "no data";
}

export interface Results {
  readonly generatedAt: string;
  readonly runSeconds: number;
  readonly environment: Environment;
  readonly config: Omit<BenchConfig, "kubeconfig" | "outDir">;
  readonly phases: PhaseResults;
  readonly targets: readonly Target[];
  readonly warnings: readonly string[];
  readonly errors: readonly { readonly phase: PhaseName | "setup" | "cleanup"; readonly message: string }[];
}

const ms = (summary: Summary | undefined, key: "p50" | "p99") => (summary ? `${summary[key]} ms` : "n/a");

/**
 * A target's row: judged from its phase's result, or "no data" when the phase gave none.
 * `target` names it when there is no result; a judgement may name it more precisely.
 */
function judged<T>(
  id: string,
  target: string,
  result: T | undefined,
  judge: (result: T) => Pick<Target, "figure" | "verdict"> & { readonly target?: string },
): Target {
  return result === undefined ? { id, target, figure: "n/a", verdict: "no data" } : { id, target, ...judge(result) };
}

export function targets(phases: PhaseResults): Target[] {
  const submit = phases.submit?.result;
  const propagation = phases.propagation?.result;
  const memory = phases.memory?.result;
  const describe = (variant: MemoryVariant) =>
    `${variant.name}: ${variant.atN.rssMB} MB (peak ${variant.peakRssMB} MB, ${variant.before.rssMB} MB before any job; ~${variant.rssPerJobKB} KB RSS, ~${variant.heapPerJobKB ?? "n/a"} KB live heap per job)`;
  return [
    judged(
      "submit",
      "dispatcher submit p50 within 1.5x of a bare create",
      submit?.p50Ratio !== undefined ? { ...submit, p50Ratio: submit.p50Ratio } : undefined,
      (result) => ({
        target: "dispatcher submit p50 within 1.5x of a bare client-node create",
        figure: `p50 ${ms(result.dispatcherMs, "p50")} vs ${ms(result.bareMs, "p50")} = ${result.p50Ratio}x; p99 ${ms(result.dispatcherMs, "p99")} vs ${ms(result.bareMs, "p99")}`,
        verdict: result.p50Ratio <= 1.5 ? "met" : "not met",
      }),
    ),
    judged("sustained", "no errors under sustained load", phases.sustained?.result, (result) => ({
      figure: `${result.perSecond} submissions/s for ${result.seconds} s at concurrency ${result.concurrency}; ${result.errors} errors; ${result.stored}/${result.accepted} stored`,
      verdict: result.errors === 0 && result.stored === result.accepted ? "met" : "not met",
    })),
    judged(
      "admission",
      "with Kueue: submit -> admitted latency and admitted jobs/s, Kueue on vs off",
      phases.admission?.result,
      (result) => ({
        target:
          "with Kueue: submit -> admitted latency and admitted jobs/s, Kueue on vs off (anchor: Kueue's own >= 75 workloads/s admitted)",
        figure:
          `on: submit -> admitted p50 ${ms(result.on.admittedMs, "p50")} p99 ${ms(result.on.admittedMs, "p99")}, ${result.on.admittedPerSecond} admitted/s, ` +
          `-> pod bound p50 ${ms(result.on.boundMs, "p50")} p99 ${ms(result.on.boundMs, "p99")}, ${result.on.submissionsPerSecond} submissions/s; ` +
          `off: -> pod bound p50 ${ms(result.off.boundMs, "p50")} p99 ${ms(result.off.boundMs, "p99")}, ${result.off.boundPerSecond} bound/s, ${result.off.submissionsPerSecond} submissions/s; ` +
          `Kueue's own rate from a held backlog of ${result.backlog.jobs}: ${result.backlog.admittedPerSecond} admitted/s`,
        verdict:
          result.backlog.admittedPerSecond >= 75 &&
          result.on.errors + result.off.errors + result.backlog.missing + result.on.missing.admitted === 0
            ? "met"
            : "not met",
      }),
    ),
    judged(
      "propagation",
      "condition change -> callback and SSE < 1 s p99",
      propagation?.callbackMs && propagation.sseMs
        ? { ...propagation, callbackMs: propagation.callbackMs, sseMs: propagation.sseMs }
        : undefined,
      (result) => ({
        target: "condition change -> backend callback and SSE < 1 s p99",
        figure: `callback p50 ${ms(result.callbackMs, "p50")} p99 ${ms(result.callbackMs, "p99")}; SSE p50 ${ms(result.sseMs, "p50")} p99 ${ms(result.sseMs, "p99")}; plan's ${result.pollIntervalSeconds} s poller p50 ${ms(result.pollerMs, "p50")} p99 ${ms(result.pollerMs, "p99")} (n=${result.jobs}); reason change (ErrImagePull) callback p99 ${ms(result.reasonCallbackMs, "p99")}, SSE p99 ${ms(result.reasonSseMs, "p99")} (n=${result.reasonJobs})`,
        verdict:
          result.callbackMs.p99 < 1000 &&
          result.sseMs.p99 < 1000 &&
          result.missing.callback + result.missing.sse === 0 &&
          (result.reasonCallbackMs?.p99 ?? 0) < 1000 &&
          (result.reasonSseMs?.p99 ?? 0) < 1000 &&
          result.missing.reasonCallback + result.missing.reasonSse === 0
            ? "met"
            : "not met",
      }),
    ),
    judged("apiserver", "O(1) watches, not O(N) requests", phases.apiserver?.result, (result) => ({
      target: `O(1) watches, not O(N) requests: API requests/s tracking ${result.trackedJobs} jobs (net of baseline; met if the dispatcher adds < 1 req/s on jobs/pods/events)`,
      figure: `dispatcher ${result.dispatcher.netPerSecond} req/s (jobs/pods/events ${result.dispatcher.netTrainingPerSecond}) vs poller ${result.poller.netPerSecond} req/s (jobs/pods/events ${result.poller.netTrainingPerSecond}); baseline ${result.baseline.perSecond} req/s`,
      verdict: result.dispatcher.netTrainingPerSecond < 1 ? "met" : "not met",
    })),
    judged(
      "memory",
      "dispatcher RSS while tracking 10,000 jobs (report)",
      memory && memory.variants.length > 0 ? memory : undefined,
      (result) => ({
        target: `dispatcher RSS while tracking ${result.jobs} jobs (report)`,
        figure: result.variants.map(describe).join("; "),
        verdict: "reported",
      }),
    ),
  ];
}

const cell = (value: unknown) => String(value ?? "n/a").replaceAll("|", "\\|");
const row = (values: readonly unknown[]) => `| ${values.map(cell).join(" | ")} |`;
const summaryRow = (name: string, summary: Summary | undefined) =>
  row([name, summary?.n, summary?.p50, summary?.p90, summary?.p99, summary?.min, summary?.max, summary?.mean]);
const SUMMARY_HEAD = [
  row(["", "n", "p50", "p90", "p99", "min", "max", "mean"]),
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
];

const watches = (counts: Readonly<Record<string, number>> | undefined) =>
  Object.entries(counts ?? {})
    .map(([key, count]) => `${key}: ${count}`)
    .join(", ") || "none";

function windowRow(name: string, window: ApiServerResult["baseline"] | undefined): string {
  return row([
    name,
    window?.seconds,
    window?.requests,
    window?.perSecond,
    window?.trainingPerSecond,
    window?.netPerSecond,
    window?.netTrainingPerSecond,
    watches(window?.openWatches),
    watches(window?.addedWatches),
  ]);
}

export function markdown(results: Results): string {
  const { phases, environment: env } = results;
  const lines: string[] = [
    "# Dispatcher benchmark",
    "",
    `Generated by \`npm run bench\` at ${results.generatedAt} in ${Math.round(results.runSeconds)} s. ` +
      `Node ${env.node}, ${env.cpus} CPU(s) (${env.cpuModel}), ${env.memoryGB} GB RAM, load average at start ${env.loadAverageAtStart.join(" / ")}` +
      `${env.loadAverageAtEnd ? `, at end ${env.loadAverageAtEnd.join(" / ")}` : ""}. ` +
      `Cluster: ${env.cluster ?? "n/a"}, Kubernetes ${env.kubernetes ?? "n/a"}.`,
    "",
    "## Targets",
    "",
    row(["", "target (DESIGN.md)", "figure", "verdict"]),
    "| --- | --- | --- | --- |",
    ...results.targets.map((target) => row([target.id, target.target, target.figure, target.verdict])),
    "",
  ];
  const submit = phases.submit?.result;
  if (submit) {
    lines.push(
      `## (a) Submit latency, ms (${submit.samplesPerPath} each, interleaved, after ${submit.warmupPerPath} warm-up each)`,
      "",
      ...SUMMARY_HEAD,
      summaryRow("dispatcher POST /v1/jobs", submit.dispatcherMs),
      summaryRow("bare createNamespacedJob", submit.bareMs),
      "",
      `p50 ratio ${submit.p50Ratio}x, p99 ratio ${submit.p99Ratio}x; errors: dispatcher ${submit.errors.dispatcher}, bare ${submit.errors.bare}.`,
      "",
    );
  }
  const sustained = phases.sustained?.result;
  if (sustained) {
    lines.push(
      `## (b) Sustained submissions (${sustained.concurrency} concurrent clients, ${sustained.seconds} s)`,
      "",
      row(["accepted", "per second", "per-second range", "errors", "stored Jobs"]),
      "| ---: | ---: | ---: | ---: | ---: |",
      row([
        sustained.accepted,
        sustained.perSecond,
        `${sustained.perSecondRange.min}-${sustained.perSecondRange.max}`,
        sustained.errors,
        sustained.stored,
      ]),
      "",
      "Latency under load, ms:",
      "",
      ...SUMMARY_HEAD,
      summaryRow("POST /v1/jobs", sustained.latencyMs),
      "",
      ...(sustained.firstErrors.length > 0 ? [`First errors: ${sustained.firstErrors.join("; ")}`, ""] : []),
    );
  }
  const admission = phases.admission?.result;
  if (admission) {
    const streamRows = (name: string, stream: AdmissionStream) => [
      ...(stream.submitMs ? [summaryRow(`${name}: POST /v1/jobs`, stream.submitMs)] : []),
      summaryRow(`${name}: submit -> pod bound`, stream.boundMs),
      ...(stream.admittedMs ? [summaryRow(`${name}: submit -> Workload admitted`, stream.admittedMs)] : []),
    ];
    lines.push(
      `## (f) Admission, Kueue off vs on (${admission.on.jobs} jobs each through the dispatcher, ${admission.on.concurrency} concurrent clients)`,
      "",
      ...SUMMARY_HEAD,
      ...streamRows("Kueue off", admission.off),
      ...streamRows("Kueue on", admission.on),
      summaryRow(`Kueue on, ${admission.backlog.jobs} held Workloads: release -> admitted`, admission.backlog.admittedMs),
      "",
      row(["", "submissions/s", "admitted/s", "pods bound/s", "errors", "missing admitted", "missing bound"]),
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
      row([
        "Kueue off",
        admission.off.submissionsPerSecond,
        "-",
        admission.off.boundPerSecond,
        admission.off.errors,
        "-",
        admission.off.missing.bound,
      ]),
      row([
        "Kueue on",
        admission.on.submissionsPerSecond,
        admission.on.admittedPerSecond,
        admission.on.boundPerSecond,
        admission.on.errors,
        admission.on.missing.admitted,
        admission.on.missing.bound,
      ]),
      row(["Kueue on, held backlog released", "-", admission.backlog.admittedPerSecond, "-", "-", admission.backlog.missing, "-"]),
      "",
      ...[admission.off, admission.on]
        .filter((stream) => stream.firstErrors.length > 0)
        .map((stream) => `First errors (${stream.namespace}): ${stream.firstErrors.join("; ")}`),
      "",
    );
  }
  const propagation = phases.propagation?.result;
  if (propagation) {
    lines.push(
      `## (c) Status propagation, ms from the bench's watch seeing the terminal condition (${propagation.jobs} jobs)`,
      "",
      ...SUMMARY_HEAD,
      summaryRow("backend callback (dispatcher)", propagation.callbackMs),
      summaryRow("SSE /v1/events (dispatcher)", propagation.sseMs),
      summaryRow(`plan's TrainingMonitor (poll every ${propagation.pollIntervalSeconds} s)`, propagation.pollerMs),
      summaryRow("plan's TrainingMonitor, from the Complete condition", propagation.pollerFromCompleteMs),
      summaryRow("(Complete condition after the first terminal one)", propagation.completeAfterFirstTerminalMs),
      "",
      "The dispatcher reports a job completed on the Job controller's first terminal condition (SuccessCriteriaMet); " +
        "the plan's status needs status.succeeded, written with the Complete condition after the controller has removed the pods' " +
        "tracking finalizers, so the poller's figure from SuccessCriteriaMet includes that gap; the row from Complete is its polling delay alone. " +
        "Small negative values: the reference is itself a watch in this process, which another consumer can beat by a few ms.",
      "",
      `### A change of reason: ms from the bench's Pod watch seeing the trainer wait with ErrImagePull (${propagation.reasonJobs ?? 0} image-pull jobs)`,
      "",
      ...SUMMARY_HEAD,
      summaryRow("backend callback, reason ErrImagePull (dispatcher)", propagation.reasonCallbackMs),
      summaryRow("SSE /v1/events, reason ErrImagePull (dispatcher)", propagation.reasonSseMs),
      "",
      `First terminal condition seen: ${Object.entries(propagation.terminalConditions)
        .map(([condition, count]) => `${condition} ${count}`)
        .join(
          ", ",
        )}. Missing: condition ${propagation.missing.condition}, callback ${propagation.missing.callback}, SSE ${propagation.missing.sse}, poller ${propagation.missing.poller}; reason change: callback ${propagation.missing.reasonCallback ?? "-"}, SSE ${propagation.missing.reasonSse ?? "-"}.`,
      "",
    );
  }
  const api = phases.apiserver?.result;
  if (api) {
    lines.push(
      `## (d) API-server requests while tracking ${api.trackedJobs} suspended jobs (${api.windowSeconds} s windows, apiserver_request_total)`,
      "",
      row([
        "window",
        "s",
        "requests",
        "req/s",
        "jobs/pods/events req/s",
        "net req/s",
        "net jobs/pods/events req/s",
        "open watches at the end (all clients)",
        "watches added vs baseline",
      ]),
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
      windowRow("baseline (neither)", api.baseline),
      windowRow("dispatcher (watch + callbacks)", api.dispatcher),
      windowRow(`plan's TrainingMonitor (${api.poller.passes} passes, ${api.poller.reads} reads)`, api.poller),
      "",
      `Dispatcher start-up until it tracked all ${api.dispatcher.tracked} jobs and the backend acknowledged their callbacks: ` +
        `${api.dispatcher.startup.seconds} s, ${api.dispatcher.startup.requests} requests (${api.dispatcher.startup.trainingRequests} on jobs/pods/events: the initial lists and one annotation PATCH per job).`,
      "",
      `Largest series, dispatcher window: ${
        api.dispatcher.breakdown
          .slice(0, 8)
          .map((entry) => `${entry.key} ×${entry.count}`)
          .join("; ") || "none"
      }.`,
      `Largest series, poller window: ${
        api.poller.breakdown
          .slice(0, 8)
          .map((entry) => `${entry.key} ×${entry.count}`)
          .join("; ") || "none"
      }.`,
      "",
    );
  }
  const memory = phases.memory?.result;
  if (memory) {
    lines.push(
      `## (e) Dispatcher memory tracking ${memory.jobs} suspended jobs (${memory.variants.length > 1 ? "each variant its own process, side by side" : "its own process"})`,
      "",
      row([
        "process",
        "when",
        "tracked",
        "RSS MB",
        "heap used MB",
        "heap total MB",
        "RSS after GC MB",
        "heap used after GC MB",
        "external MB",
        "open fds",
      ]),
      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
      ...memory.variants.flatMap((variant) =>
        (
          [
            ["before any job", variant.before],
            [`at ${memory.jobs}`, variant.atN],
          ] as const
        ).map(([when, figures]) =>
          row([
            variant.name,
            when,
            figures.tracked,
            figures.rssMB,
            figures.heapUsedMB,
            figures.heapTotalMB,
            figures.rssAfterGcMB,
            figures.heapUsedAfterGcMB,
            figures.externalMB,
            figures.openFds,
          ]),
        ),
      ),
      "",
      ...memory.variants.map(
        (variant) =>
          `- ${variant.name}: peak RSS ${variant.peakRssMB} MB, peak open fds ${variant.peakOpenFds ?? "n/a"}; per tracked job ~${variant.rssPerJobKB} KB of RSS, ~${variant.heapPerJobKB ?? "n/a"} KB of live heap (after GC); settled ${variant.settleSeconds} s after the last create.`,
      ),
      "",
      `${memory.jobs} suspended Jobs created in ${memory.fill.seconds} s (${memory.fill.perSecond}/s, bare client-node creates).`,
      "",
    );
  }
  const failed = Object.entries(phases).filter(([, outcome]) => outcome?.status === "failed");
  if (results.errors.length > 0 || failed.length > 0 || results.warnings.length > 0) {
    lines.push("## Errors and warnings", "");
    for (const error of results.errors) lines.push(`- error (${error.phase}): ${error.message}`);
    for (const warning of results.warnings) lines.push(`- warning: ${warning}`);
    lines.push("");
  }
  lines.push(
    "## What these numbers are",
    "",
    "- The control plane is real (etcd, kube-apiserver, controller-manager, scheduler from k8s v1.34), the nodes are kwok fakes: " +
      "pods never pull images or run containers, so pod start and run times are kwok's stage delays, not a kubelet's.",
    "- Everything (etcd, API server, controllers, kwok, the dispatcher process and the bench) shares one machine; " +
      "other work on it shows up in every latency. Compare figures within a run, not across machines.",
    "- (a) and (b) use a namespace with a zero-pod quota: the Job is stored, no pods are created, so submit latency is " +
      "the dispatcher's path (HTTP, validation, rendering, one create) against the bare create, without pod churn. " +
      "The dispatcher runs its live status (watches) meanwhile; backend callbacks are off in (a) and (b).",
    "- Before each phase the bench waits until the API server is quiet on jobs/pods/events: the controller-manager " +
      "writes a status and an event per Job through a client limited to 20 requests/s and otherwise lags into the next phase.",
    "- (c) timestamps every consumer in the bench process on one monotonic clock, from the bench's own watch seeing " +
      "the first terminal condition (the Job controller writes SuccessCriteriaMet, then Complete); the poller's figure is " +
      "dominated by its sleep, as the plan's would be.",
    "- (f) submits the same CPU-only jobs (tiny requests, pods that end after kwok's 1 s) through the dispatcher twice, " +
      "Kueue off then on (TRAINING_QUEUEING=true, the project's LocalQueue with quota no stream reaches), each in its own namespace " +
      "and dispatcher process; times are from the POST being sent to the bench's own watches seeing the pod bound (spec.nodeName) " +
      "and the Workload's Admitted condition. Rates are per second from the first POST to the last sighting, so with Kueue on " +
      "admitted/s is bounded by submissions/s; the held backlog (ClusterQueue stopPolicy Hold, then None) gives Kueue's own " +
      "admission rate, the figure its >= 75 workloads/s threshold speaks of.",
    "- (d) counts every request the API server served (its own counter has no namespace label), so the baseline " +
      "(controllers, kwok heartbeats) is subtracted; watches are long-running and counted when they end, hence the open-watch column. " +
      "client-node's Watch ends an idle watch after 30 s and ListWatch resumes it from its resourceVersion (no list), so each of " +
      "the dispatcher's three watches costs about 2 requests a minute when nothing changes.",
    memory && memory.variants.length > 1
      ? "- (e) runs the dispatcher's whole process (HTTP server, watches on Jobs, Pods and Events) twice side by side: " +
          "without a backend, and with status callbacks to the bench's recording backend (one POST and one Job PATCH per job)."
      : "- (e) runs the dispatcher's whole process (HTTP server, watches on Jobs, Pods and Events) without a backend to call " +
          "(BENCH_RSS_CALLBACKS=1 adds a second process with status callbacks).",
    "- (e) tracks suspended Jobs: no pods or events, so real jobs with pods add to the figures. RSS is what the OS charges; " +
      "V8 and the allocator keep memory after a burst, so RSS after GC can stay well above the live heap.",
    "",
  );
  return lines.join("\n");
}

export async function writeResults(outDir: string, results: Results): Promise<{ json: string; md: string; formatError?: string }> {
  await mkdir(outDir, { recursive: true });
  const json = join(outDir, "results.json");
  const md = join(outDir, "results.md");
  await writeFile(json, `${JSON.stringify(results, null, 2)}\n`);
  // The repository lints every JSON file: give the results the formatter's layout (short arrays on one line).
  const biome = join(import.meta.dirname, "..", "node_modules", ".bin", "biome");
  const formatted = spawnSync(biome, ["format", "--write", json], { encoding: "utf8" });
  const output = `${formatted.stdout}${formatted.stderr}`;
  // A results directory the lint configuration ignores (bench/results/) needs no formatting.
  const formatError =
    formatted.error?.message ?? (formatted.status === 0 || output.includes("provided but ignored") ? undefined : output.trim());
  await writeFile(md, markdown(results));
  return { json, md, ...(formatError !== undefined && { formatError }) };
}
