import { isAbsolute, resolve } from "node:path";
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";

export interface HelmChartPin {
  readonly chart: string;
  /** An exact chart version, never a range: upgrades are reviewed changes to this table. */
  readonly version: string;
  readonly repo: string;
}

/** Every Helm chart the platform installs. */
export const HELM_CHARTS = {
  nvidiaDevicePlugin: { chart: "nvidia-device-plugin", version: "0.17.4", repo: "https://nvidia.github.io/k8s-device-plugin" },
  dcgmExporter: { chart: "dcgm-exporter", version: "4.7.1", repo: "https://nvidia.github.io/dcgm-exporter/helm-charts" },
  clusterAutoscaler: { chart: "cluster-autoscaler", version: "9.46.0", repo: "https://kubernetes.github.io/autoscaler" },
  kubePrometheusStack: { chart: "kube-prometheus-stack", version: "79.12.0", repo: "https://prometheus-community.github.io/helm-charts" },
  mlflow: { chart: "mlflow", version: "1.12.0", repo: "https://community-charts.github.io/helm-charts" },
  // The Kueue the test control plane runs (test/cluster/versions.env KUEUE_VERSION v0.17.0); published only as OCI.
  kueue: { chart: "kueue", version: "0.17.0", repo: "oci://registry.k8s.io/kueue/charts" },
} as const satisfies Record<string, HelmChartPin>;

export type HelmChartKey = keyof typeof HELM_CHARTS;

/**
 * Where a chart is fetched from instead of its public repository: a mirror of
 * that repository (https) or an OCI registry (oci://), both at the pinned
 * version, or a local chart directory or `.tgz` (its own version), for
 * air-gapped clusters and the engine test's small charts.
 */
export type ChartSource = { readonly repo: string } | { readonly path: string };

/** How every release of a stack is installed. */
export interface ReleaseSettings {
  /** @default each chart's public repository */
  readonly chartSources?: Readonly<Partial<Record<HelmChartKey, ChartSource>>>;
  /** How long Helm waits for a release's workloads to become ready. @default 600 */
  readonly timeoutSeconds?: number;
  /** Relative `path` sources are resolved from here (the stack files' directory). @default the working directory */
  readonly baseDirectory?: string;
}

export const DEFAULT_RELEASE_TIMEOUT_SECONDS = 600;

export type PinnedReleaseArgs = Omit<k8s.helm.v3.ReleaseArgs, "name" | "chart" | "version" | "repositoryOpts" | "timeout">;

/** A Helm release of a pinned chart, named after the chart (not auto-named) so its objects' names are predictable. */
export function pinnedRelease(
  name: string,
  key: HelmChartKey,
  args: PinnedReleaseArgs,
  settings: ReleaseSettings,
  opts: pulumi.CustomResourceOptions,
): k8s.helm.v3.Release {
  const pin: HelmChartPin = HELM_CHARTS[key];
  return new k8s.helm.v3.Release(
    name,
    {
      ...args,
      name: pin.chart,
      ...chartFrom(pin, settings.chartSources?.[key], settings.baseDirectory),
      timeout: settings.timeoutSeconds ?? DEFAULT_RELEASE_TIMEOUT_SECONDS,
    },
    opts,
  );
}

function chartFrom(
  pin: HelmChartPin,
  source: ChartSource | undefined,
  baseDirectory: string = process.cwd(),
): Pick<k8s.helm.v3.ReleaseArgs, "chart" | "version" | "repositoryOpts"> {
  if (source !== undefined && "path" in source)
    return { chart: isAbsolute(source.path) ? source.path : resolve(baseDirectory, source.path) };
  const repo = source?.repo ?? pin.repo;
  // Helm takes an OCI chart as one reference, not as a repository plus a chart name.
  if (repo.startsWith("oci://")) return { chart: ociChart(repo, pin.chart), version: pin.version };
  return { chart: pin.chart, version: pin.version, repositoryOpts: { repo } };
}

/** The chart reference Helm installs from an OCI registry path (`oci://<registry>/<path>/<chart>`). */
function ociChart(repo: string, chart: string): string {
  return `${repo.replace(/\/+$/, "")}/${chart}`;
}
