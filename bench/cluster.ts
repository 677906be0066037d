/**
 * The cluster the benchmark runs against: its own test/cluster instance on
 * non-default ports (or KUBECONFIG_BENCH), namespaces labelled like the platform's
 * training namespace, and the API server's own request counters.
 */
import { spawn } from "node:child_process";
import { type RequestOptions, request } from "node:https";
import { join } from "node:path";
import { CoreV1Api, KubeConfig, type V1Namespace, VersionApi } from "@kubernetes/client-node";
import { applyPlatform, distObjects } from "../test/integration/platform.ts";
import type { BenchConfig } from "./config.ts";
import { errorMessage, sleep } from "./stats.ts";

const CLUSTER_SCRIPTS = join(import.meta.dirname, "..", "test", "cluster");

export interface Cluster {
  readonly kubeConfig: KubeConfig;
  readonly kubeconfigPath: string;
  /** True when the bench started it (and will stop it). */
  readonly own: boolean;
  readonly version: string;
  stop(): Promise<void>;
}

function clusterEnv(config: BenchConfig): NodeJS.ProcessEnv {
  const { cluster } = config;
  return {
    ...process.env,
    TP_CLUSTER_DIR: cluster.dir,
    TP_CLUSTER_API_PORT: String(cluster.apiPort),
    TP_CLUSTER_ETCD_PORT: String(cluster.etcdPort),
    TP_CLUSTER_KCM_PORT: String(cluster.kcmPort),
    TP_CLUSTER_SCHEDULER_PORT: String(cluster.schedulerPort),
    TP_CLUSTER_KWOK_PORT: String(cluster.kwokPort),
  };
}

/** Runs one of test/cluster's scripts; its log lines go to our stderr. */
function runScript(script: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [join(CLUSTER_SCRIPTS, script), ...args], { env, stdio: ["ignore", "inherit", "inherit"] });
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      reject(new Error(`${script} did not finish within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${script}: ${error.message}`));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${script} failed (${signal ?? `exit code ${code}`}); see the [cluster] lines above`));
    });
  });
}

async function connect(path: string, own: boolean, stop: () => Promise<void>): Promise<Cluster> {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(path);
  const version = await kubeConfig.makeApiClient(VersionApi).getCode();
  return { kubeConfig, kubeconfigPath: path, own, version: version.gitVersion, stop };
}

/** KUBECONFIG_BENCH, or a fresh test/cluster instance on the bench's ports (down.sh on stop). */
export async function openCluster(config: BenchConfig, log: (line: string) => void): Promise<Cluster> {
  if (config.kubeconfig) {
    log(`using the cluster of KUBECONFIG_BENCH=${config.kubeconfig}`);
    return connect(config.kubeconfig, false, async () => undefined);
  }
  const env = clusterEnv(config);
  log(`starting a cluster in ${config.cluster.dir} (API port ${config.cluster.apiPort}) with test/cluster/up.sh`);
  const down = () => runScript("down.sh", ["--quiet"], env, 120_000);
  try {
    // A cold build of the binaries takes long; a warm start about 15 s.
    await runScript("up.sh", [], env, 30 * 60_000);
    return await connect(join(config.cluster.dir, "kubeconfig"), true, down);
  } catch (error) {
    await down().catch((downError) => log(`down.sh failed too: ${errorMessage(downError)}`));
    throw error;
  }
}

/** The platform chart (training namespace, priority classes, quota, RBAC, ...) as the integration tests apply it. */
export async function installPlatform(kubeConfig: KubeConfig): Promise<void> {
  await applyPlatform(kubeConfig);
}

/** The training namespace's labels (Pod Security "restricted"), from the synthesized platform chart. */
function trainingNamespaceLabels(): Record<string, string> {
  const namespace = distObjects("platform.k8s.yaml").find((object) => object.kind === "Namespace");
  return { ...(namespace?.metadata?.labels ?? {}) };
}

export const BENCH_NAMESPACE_LABEL = "training-platform.io/bench";

/**
 * A fresh namespace labelled like `training` but without its quota (1000 Jobs, 16 GPUs).
 * `noPods` adds a ResourceQuota of zero pods: Jobs are stored but the Job controller cannot
 * create their pods, for phases that measure submission only.
 */
export async function createNamespace(kubeConfig: KubeConfig, name: string, options: { noPods?: boolean } = {}): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await deleteNamespace(kubeConfig, name, 180_000);
  const body: V1Namespace = { metadata: { name, labels: { ...trainingNamespaceLabels(), [BENCH_NAMESPACE_LABEL]: "true" } } };
  await core.createNamespace({ body });
  if (options.noPods) {
    await core.createNamespacedResourceQuota({
      namespace: name,
      body: { metadata: { name: "bench-no-pods" }, spec: { hard: { pods: "0" } } },
    });
  }
  // The service account controller is not needed (pods do not mount a token), but the
  // namespace must be usable before the first create.
  await sleep(200);
}

/** Deletes a namespace; with waitMs > 0, waits until it is gone (throws on timeout). */
export async function deleteNamespace(kubeConfig: KubeConfig, name: string, waitMs: number): Promise<void> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  try {
    await core.deleteNamespace({ name, propagationPolicy: "Background" });
  } catch (error) {
    if ((error as { code?: number }).code !== 404) throw error;
  }
  if (waitMs <= 0) return;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await core.readNamespace({ name });
    } catch (error) {
      if ((error as { code?: number }).code === 404) return;
      throw error;
    }
    if (Date.now() > deadline) throw new Error(`namespace ${name} still exists ${Math.round(waitMs / 1000)} s after its deletion`);
    await sleep(500);
  }
}

// ---- the API server's own metrics ------------------------------------------------------

export interface Series {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface ApiServerSample {
  /** performance.now() when the scrape answered. */
  readonly at: number;
  /** apiserver_request_total by its full label set. */
  readonly requests: ReadonlyMap<string, Series>;
  /** apiserver_longrunning_requests (open watches and the like). */
  readonly longRunning: ReadonlyMap<string, Series>;
}

function get(kubeConfig: KubeConfig, path: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) {
      reject(new Error("the kubeconfig has no current cluster"));
      return;
    }
    const options: RequestOptions = { method: "GET", timeout: timeoutMs };
    kubeConfig
      .applyToHTTPSOptions(options)
      .then(() => {
        const req = request(new URL(path, cluster.server), options, (response) => {
          let body = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => {
            body += chunk;
          });
          response.on("end", () => {
            if (response.statusCode === 200) resolve(body);
            else reject(new Error(`GET ${path} answered ${response.statusCode}: ${body.slice(0, 200)}`));
          });
        });
        req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out after ${timeoutMs} ms`)));
        req.on("error", reject);
        req.end();
      })
      .catch(reject);
  });
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} ([^ ]+)(?: \d+)?$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string, names: readonly string[]): Map<string, Map<string, Series>> {
  const out = new Map<string, Map<string, Series>>(names.map((name) => [name, new Map()]));
  for (const line of text.split("\n")) {
    const match = SAMPLE_LINE.exec(line);
    if (!match) continue;
    const [, name, labelText, value] = match as unknown as [string, string, string, string];
    const series = out.get(name);
    if (!series) continue;
    const labels = Object.fromEntries([...labelText.matchAll(LABEL_PAIR)].map((pair) => [pair[1] as string, pair[2] as string]));
    series.set(labelText, { labels, value: Number(value) });
  }
  return out;
}

/** One scrape of GET /metrics on the API server with the admin credentials. */
export async function scrapeApiServer(kubeConfig: KubeConfig): Promise<ApiServerSample> {
  const text = await get(kubeConfig, "/metrics", 30_000);
  const at = performance.now();
  const parsed = parseMetrics(text, ["apiserver_request_total", "apiserver_longrunning_requests"]);
  return {
    at,
    requests: parsed.get("apiserver_request_total") ?? new Map(),
    longRunning: parsed.get("apiserver_longrunning_requests") ?? new Map(),
  };
}

export interface RequestDelta {
  readonly seconds: number;
  /** Every request the API server counted in the window. */
  readonly total: number;
  /** Requests on the resources training jobs involve: jobs, pods, events. */
  readonly trainingResources: number;
  /** Per verb/resource/subresource/code, largest first. */
  readonly breakdown: readonly { readonly key: string; readonly count: number }[];
  /** Open long-running requests on jobs/pods/events at the end of the window, e.g. "WATCH jobs": 1. */
  readonly openWatches: Readonly<Record<string, number>>;
}

const TRAINING_RESOURCES = new Set(["jobs", "pods", "events"]);

/** What the API server counted between two scrapes. Counters that went down (restart) count from 0. */
export function requestDelta(before: ApiServerSample, after: ApiServerSample): RequestDelta {
  let total = 0;
  let trainingResources = 0;
  const byKey = new Map<string, number>();
  for (const [key, series] of after.requests) {
    const previous = before.requests.get(key)?.value ?? 0;
    const delta = series.value >= previous ? series.value - previous : series.value;
    if (delta === 0) continue;
    total += delta;
    const { verb = "", resource = "", subresource = "", code = "" } = series.labels;
    if (TRAINING_RESOURCES.has(resource)) trainingResources += delta;
    const name = `${verb} ${resource || "(non-resource)"}${subresource ? `/${subresource}` : ""} ${code}`;
    byKey.set(name, (byKey.get(name) ?? 0) + delta);
  }
  const openWatches: Record<string, number> = {};
  for (const series of after.longRunning.values()) {
    const { verb = "", resource = "" } = series.labels;
    if (TRAINING_RESOURCES.has(resource) && series.value > 0)
      openWatches[`${verb} ${resource}`] = (openWatches[`${verb} ${resource}`] ?? 0) + series.value;
  }
  return {
    seconds: (after.at - before.at) / 1000,
    total,
    trainingResources,
    breakdown: [...byKey.entries()].sort((a, b) => b[1] - a[1]).map(([key, count]) => ({ key, count })),
    openWatches,
  };
}

/**
 * Waits until the API server serves fewer than 1 request/s on jobs/pods/events over 5 s. The
 * controller-manager writes a status and an event per Job (a Suspended condition, a failed pod
 * creation under a zero-pod quota) through a client limited to 20 requests/s, so after thousands of
 * Jobs it lags for a minute or more; a phase measured meanwhile would measure that backlog too.
 */
export async function untilQuiet(
  kubeConfig: KubeConfig,
  timeoutMs: number,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const started = performance.now();
  let previous = await scrapeApiServer(kubeConfig);
  for (;;) {
    await sleep(5000, signal);
    const current = await scrapeApiServer(kubeConfig);
    const delta = requestDelta(previous, current);
    const rate = delta.trainingResources / delta.seconds;
    if (rate < 1) return;
    const busiest = delta.breakdown.find((entry) => /^\S+ (jobs|pods|events)\b/.test(entry.key))?.key;
    if (performance.now() - started > timeoutMs)
      throw new Error(
        `the API server still serves ${rate.toFixed(1)} req/s on jobs/pods/events (${busiest}) after ${Math.round(timeoutMs / 1000)} s`,
      );
    log(`waiting for the control plane to settle: ${rate.toFixed(1)} req/s on jobs/pods/events (mostly ${busiest})`);
    previous = current;
  }
}
