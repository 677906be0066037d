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
} as const satisfies Record<string, HelmChartPin>;

export type PinnedReleaseArgs = Omit<k8s.helm.v3.ReleaseArgs, "name" | "chart" | "version" | "repositoryOpts">;

/** A Helm release of a pinned chart, named after the chart (not auto-named) so its objects' names are predictable. */
export function pinnedRelease(
  name: string,
  pin: HelmChartPin,
  args: PinnedReleaseArgs,
  opts: pulumi.CustomResourceOptions,
): k8s.helm.v3.Release {
  return new k8s.helm.v3.Release(
    name,
    { ...args, name: pin.chart, chart: pin.chart, version: pin.version, repositoryOpts: { repo: pin.repo } },
    opts,
  );
}
