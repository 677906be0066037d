/**
 * `npm run bench`: the dispatcher against the real control plane of test/cluster
 * (its own instance on non-default ports, or KUBECONFIG_BENCH), the figures of
 * DESIGN.md "Targets":
 *   (a) submit      submit latency, dispatcher vs bare create, interleaved
 *   (b) sustained   submissions per second and errors at constant concurrency
 *   (c) propagation condition change -> backend callback / SSE vs the plan's 10 s poller
 *   (d) apiserver   API-server requests/s tracking 1,000 jobs, dispatcher vs poller
 *   (e) memory      dispatcher RSS tracking 10,000 jobs
 *   (f) admission   submit -> admitted / pod bound, Kueue off vs on, and Kueue's own admission rate
 * Writes bench/results.json and bench/results.md (BENCH_OUT_DIR) with whatever
 * phases completed and every error; prints the figures. Sizes: see config.ts.
 */
import { randomBytes } from "node:crypto";
import { cpus, loadavg, totalmem } from "node:os";
import { RecordingBackend } from "./backend.ts";
import { type Cluster, createNamespace, deleteNamespace, installPlatform, openCluster, untilQuiet } from "./cluster.ts";
import { type BenchConfig, loadConfig, type PhaseName } from "./config.ts";
import type { PhaseContext } from "./context.ts";
import { admissionPhase } from "./phases/admission.ts";
import { apiServerPhase } from "./phases/apiserver.ts";
import { memoryPhase } from "./phases/memory.ts";
import { propagationPhase } from "./phases/propagation.ts";
import { submitPhase } from "./phases/submit.ts";
import { sustainedPhase } from "./phases/sustained.ts";
import { type Environment, type PhaseOutcome, type PhaseResults, type Results, targets, writeResults } from "./report.ts";
import { errorMessage, now, round, sleep } from "./stats.ts";

const started = now();
const log = (line: string) => console.error(`[bench ${((now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}`);

/** A phase's backstop: how long it may take before it is aborted, from the sizes it runs with. */
function phaseTimeoutMs(config: BenchConfig, phase: PhaseName): number {
  const seconds = {
    submit: 120 + (config.submitWarmup + config.submitSamples) * 2,
    sustained: config.sustainedSeconds + 300,
    admission: 900 + config.admissionJobs * 3,
    propagation: config.statusJobs + 3 * config.pollIntervalSeconds + 300,
    apiserver: 3 * config.windowSeconds + config.trackJobs / 5 + 600,
    memory: config.rssJobs / 10 + 600,
  }[phase];
  return seconds * 1000;
}

const PHASES: Record<PhaseName, (ctx: PhaseContext) => Promise<unknown>> = {
  submit: submitPhase,
  sustained: sustainedPhase,
  admission: admissionPhase,
  propagation: propagationPhase,
  apiserver: apiServerPhase,
  memory: memoryPhase,
};

async function main(): Promise<number> {
  let config: BenchConfig;
  try {
    config = loadConfig();
  } catch (error) {
    console.error(`bench: ${errorMessage(error)}`);
    return 2;
  }
  const root = new AbortController();
  process.once("SIGINT", () => {
    log("interrupted: stopping the current phase, then cleaning up (Ctrl-C again to quit at once)");
    root.abort(new Error("interrupted (SIGINT)"));
    process.once("SIGINT", () => process.exit(130));
  });

  const cpuList = cpus();
  const environment: Environment = {
    node: process.version,
    cpus: cpuList.length,
    cpuModel: cpuList[0]?.model.trim() ?? "unknown",
    memoryGB: round(totalmem() / 1024 ** 3, 1),
    loadAverageAtStart: loadavg().map((value) => round(value, 2)),
  };
  const phases: PhaseResults = {};
  const warnings: string[] = [];
  const errors: { phase: PhaseName | "setup" | "cleanup"; message: string }[] = [];
  const { kubeconfig: _kubeconfig, outDir, ...publicConfig } = config;
  const snapshot = (): Results => ({
    generatedAt: new Date().toISOString(),
    runSeconds: round((now() - started) / 1000, 1),
    environment,
    config: publicConfig,
    phases,
    targets: targets(phases),
    warnings,
    errors,
  });
  const save = async () => {
    try {
      const written = await writeResults(outDir, snapshot());
      if (written.formatError) log(`results.json is written but biome could not format it: ${written.formatError}`);
      return written;
    } catch (error) {
      log(`could not write the results to ${outDir}: ${errorMessage(error)}`);
      return undefined;
    }
  };

  log(`phases: ${config.phases.join(", ")}; results to ${outDir}`);
  let cluster: Cluster | undefined;
  const backend = new RecordingBackend();
  const namespaces = new Set<string>();
  try {
    cluster = await openCluster(config, log);
    environment.kubernetes = cluster.version;
    environment.cluster = cluster.own
      ? `own test/cluster instance (${config.cluster.dir}, API port ${config.cluster.apiPort}; 2 kwok GPU nodes, 1 kwok CPU node)`
      : "KUBECONFIG_BENCH";
    log(`Kubernetes ${cluster.version}; applying the platform chart`);
    await installPlatform(cluster.kubeConfig);
    await backend.start();

    const openCluster_ = cluster;
    const apiToken = randomBytes(16).toString("hex");
    for (const [index, phase] of config.phases.entries()) {
      if (root.signal.aborted) break;
      const isLast = index === config.phases.length - 1;
      const timeoutMs = phaseTimeoutMs(config, phase);
      const timeout = new AbortController();
      const timer = setTimeout(
        () => timeout.abort(new Error(`phase ${phase} timed out after ${Math.round(timeoutMs / 1000)} s`)),
        timeoutMs,
      );
      const signal = AbortSignal.any([root.signal, timeout.signal]);
      const ctx: PhaseContext = {
        config,
        kubeConfig: openCluster_.kubeConfig,
        kubeconfigPath: openCluster_.kubeconfigPath,
        signal,
        backend,
        apiToken,
        log,
        warn: (message) => {
          warnings.push(message);
          log(`warning: ${message}`);
        },
        namespace: async (name, options) => {
          namespaces.add(name);
          await createNamespace(openCluster_.kubeConfig, name, options);
          return name;
        },
        dropNamespace: async (name) => {
          // Later phases would feel a namespace being emptied; the last one on our own cluster need not wait.
          const waitMs = isLast && openCluster_.own ? 0 : 180_000;
          try {
            log(`deleting namespace ${name}${waitMs ? " and waiting until it is gone" : ""}`);
            await deleteNamespace(openCluster_.kubeConfig, name, waitMs);
            namespaces.delete(name);
          } catch (error) {
            ctx.warn(`deleting namespace ${name}: ${errorMessage(error)}`);
          }
        },
      };
      try {
        await untilQuiet(openCluster_.kubeConfig, 240_000, log, root.signal);
      } catch (error) {
        if (root.signal.aborted) break;
        ctx.warn(`before ${phase}: ${errorMessage(error)}; measuring anyway`);
      }
      log(`phase ${phase}: start (backstop ${Math.round(timeoutMs / 1000)} s)`);
      const phaseStarted = now();
      let outcome: PhaseOutcome<never>;
      try {
        // A phase that ignores its signal is abandoned a minute after the abort, so the run still ends.
        const abandoned = new Promise<never>((_, reject) =>
          signal.addEventListener("abort", () => setTimeout(() => reject(signal.reason), 60_000).unref(), { once: true }),
        );
        const result = await Promise.race([PHASES[phase](ctx), abandoned]);
        outcome = { status: "ok", seconds: round((now() - phaseStarted) / 1000, 1), result: result as never };
        phases[phase] = outcome;
        const figure = targets(phases).find((target) => target.id === phase);
        log(`phase ${phase}: done in ${outcome.seconds} s: ${figure?.figure} (${figure?.verdict})`);
      } catch (error) {
        const message = signal.aborted ? errorMessage(signal.reason) : errorMessage(error);
        outcome = { status: "failed", seconds: round((now() - phaseStarted) / 1000, 1), error: message };
        errors.push({ phase, message });
        log(`phase ${phase}: FAILED after ${outcome.seconds} s: ${message}`);
      } finally {
        clearTimeout(timer);
      }
      phases[phase] = outcome;
      await save();
    }
  } catch (error) {
    errors.push({ phase: "setup", message: errorMessage(error) });
    log(`setup failed: ${errorMessage(error)}`);
  } finally {
    if (cluster) {
      const external = !cluster.own;
      for (const name of namespaces) {
        try {
          log(`clean-up: deleting namespace ${name}`);
          await deleteNamespace(cluster.kubeConfig, name, external ? 300_000 : 0);
        } catch (error) {
          errors.push({ phase: "cleanup", message: `namespace ${name}: ${errorMessage(error)}` });
        }
      }
    }
    await backend.close().catch(() => undefined);
    if (cluster?.own) {
      log("stopping the bench cluster (test/cluster/down.sh)");
      await cluster.stop().catch((error) => errors.push({ phase: "cleanup", message: `down.sh: ${errorMessage(error)}` }));
    }
    environment.loadAverageAtEnd = loadavg().map((value) => round(value, 2));
  }

  const written = await save();
  const results = snapshot();
  console.log("");
  console.log("| target | figure | verdict |");
  console.log("| --- | --- | --- |");
  for (const target of results.targets) console.log(`| ${target.target} | ${target.figure} | ${target.verdict} |`);
  for (const error of errors) console.log(`error (${error.phase}): ${error.message}`);
  console.log("");
  if (written) console.log(`wrote ${written.json} and ${written.md} (run took ${Math.round(results.runSeconds)} s)`);
  // Give stray sockets a moment, then leave even if a library keeps the loop alive.
  await sleep(100);
  return errors.length > 0 ? 1 : 0;
}

process.exit(await main());
