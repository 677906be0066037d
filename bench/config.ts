/**
 * Benchmark sizes and switches, from the environment (all optional):
 *
 *   KUBECONFIG_BENCH              use this cluster instead of starting one with test/cluster/up.sh
 *   BENCH_CLUSTER_DIR             state dir of the bench's own cluster        (/tmp/bench-cluster)
 *   BENCH_CLUSTER_API_PORT        its ports: API 36443, etcd 32379 (+1 peer), controller-manager 30257,
 *   BENCH_CLUSTER_ETCD_PORT       scheduler 30259, kwok 30260, so the bench never collides with the
 *   BENCH_CLUSTER_KCM_PORT        integration tests' cluster on the default ports
 *   BENCH_CLUSTER_SCHEDULER_PORT
 *   BENCH_CLUSTER_KWOK_PORT
 *   BENCH_PHASES                  comma list of submit,sustained,admission,propagation,apiserver,memory (all)
 *   BENCH_SUBMIT_SAMPLES          (a) measured submissions per path, interleaved          (200)
 *   BENCH_SUBMIT_WARMUP           (a) unmeasured submissions per path first                (10)
 *   BENCH_SUSTAINED_SECONDS       (b) duration of the sustained load                       (30)
 *   BENCH_SUSTAINED_CONCURRENCY   (b) clients submitting at once                           (8)
 *   BENCH_ADMISSION_JOBS          (f) jobs per stream, Kueue off and on, and held in the backlog (100)
 *   BENCH_ADMISSION_CONCURRENCY   (f) clients submitting at once                           (8)
 *   BENCH_STATUS_JOBS             (c) short jobs whose completion is timed                 (50)
 *   BENCH_POLL_INTERVAL_SECONDS   (c, d) the baseline poller's sleep between passes        (10, the plan's)
 *   BENCH_TRACK_JOBS              (d) suspended jobs tracked while API requests are counted (1000)
 *   BENCH_WINDOW_SECONDS          (d) length of each counting window                       (60)
 *   BENCH_JOBS_RSS                (e) suspended jobs the dispatcher tracks for the RSS figure (10000)
 *   BENCH_RSS_CALLBACKS           (e) 1: also a second dispatcher process with backend callbacks beside the
 *                                 watch-only one (one POST + one Job PATCH per job: slower fill) (0)
 *   BENCH_CREATE_CONCURRENCY      (d, e) parallel creates when filling a namespace          (16)
 *   BENCH_OUT_DIR                 where results.json and results.md go                     (bench/)
 */
import { join } from "node:path";

export const PHASE_NAMES = ["submit", "sustained", "admission", "propagation", "apiserver", "memory"] as const;
export type PhaseName = (typeof PHASE_NAMES)[number];

export interface BenchConfig {
  readonly kubeconfig?: string;
  readonly cluster: {
    readonly dir: string;
    readonly apiPort: number;
    readonly etcdPort: number;
    readonly kcmPort: number;
    readonly schedulerPort: number;
    readonly kwokPort: number;
  };
  readonly phases: readonly PhaseName[];
  readonly submitSamples: number;
  readonly submitWarmup: number;
  readonly sustainedSeconds: number;
  readonly sustainedConcurrency: number;
  readonly admissionJobs: number;
  readonly admissionConcurrency: number;
  readonly statusJobs: number;
  readonly pollIntervalSeconds: number;
  readonly trackJobs: number;
  readonly windowSeconds: number;
  readonly rssJobs: number;
  readonly rssCallbacks: boolean;
  readonly createConcurrency: number;
  readonly outDir: string;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer of at least ${min}, not '${raw}'`);
  return value;
}

function phases(raw: string | undefined): PhaseName[] {
  if (raw === undefined || raw.trim() === "") return [...PHASE_NAMES];
  const names = raw.split(",").map((name) => name.trim());
  const unknown = names.filter((name) => !(PHASE_NAMES as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`BENCH_PHASES: unknown phase(s) ${unknown.join(", ")}; known: ${PHASE_NAMES.join(", ")}`);
  return PHASE_NAMES.filter((name) => names.includes(name));
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const repo = join(import.meta.dirname, "..");
  return {
    ...(env.KUBECONFIG_BENCH ? { kubeconfig: env.KUBECONFIG_BENCH } : {}),
    cluster: {
      dir: env.BENCH_CLUSTER_DIR || "/tmp/bench-cluster",
      apiPort: integer(env, "BENCH_CLUSTER_API_PORT", 36443),
      etcdPort: integer(env, "BENCH_CLUSTER_ETCD_PORT", 32379),
      kcmPort: integer(env, "BENCH_CLUSTER_KCM_PORT", 30257),
      schedulerPort: integer(env, "BENCH_CLUSTER_SCHEDULER_PORT", 30259),
      kwokPort: integer(env, "BENCH_CLUSTER_KWOK_PORT", 30260),
    },
    phases: phases(env.BENCH_PHASES),
    submitSamples: integer(env, "BENCH_SUBMIT_SAMPLES", 200),
    submitWarmup: integer(env, "BENCH_SUBMIT_WARMUP", 10, 0),
    sustainedSeconds: integer(env, "BENCH_SUSTAINED_SECONDS", 30),
    sustainedConcurrency: integer(env, "BENCH_SUSTAINED_CONCURRENCY", 8),
    admissionJobs: integer(env, "BENCH_ADMISSION_JOBS", 100),
    admissionConcurrency: integer(env, "BENCH_ADMISSION_CONCURRENCY", 8),
    statusJobs: integer(env, "BENCH_STATUS_JOBS", 50),
    pollIntervalSeconds: integer(env, "BENCH_POLL_INTERVAL_SECONDS", 10),
    trackJobs: integer(env, "BENCH_TRACK_JOBS", 1000),
    windowSeconds: integer(env, "BENCH_WINDOW_SECONDS", 60),
    rssJobs: integer(env, "BENCH_JOBS_RSS", 10_000),
    rssCallbacks: env.BENCH_RSS_CALLBACKS === "1",
    createConcurrency: integer(env, "BENCH_CREATE_CONCURRENCY", 16),
    outDir: env.BENCH_OUT_DIR || join(repo, "bench"),
  };
}
