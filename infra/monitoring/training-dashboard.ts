/**
 * The "Training jobs" Grafana dashboard as JSON, built from the dispatcher's
 * metric names so a renamed metric cannot leave a silently empty panel.
 */
import { METRIC, METRIC_LABEL } from "../../dispatcher/metric-names.ts";
import type { Phase } from "../../dispatcher/status/status-model.ts";

export const TRAINING_DASHBOARD_UID = "training-jobs";

/** Per-GPU utilisation, as the DCGM exporter names it. */
const DCGM_GPU_UTILIZATION = "DCGM_FI_DEV_GPU_UTIL";

interface Target {
  readonly expr: string;
  readonly legend: string;
}

interface PanelSpec {
  readonly title: string;
  readonly unit: string;
  readonly targets: readonly Target[];
}

const quantile = (q: number, histogram: string, by = "") =>
  `histogram_quantile(${q}, sum by (le${by ? `, ${by}` : ""}) (rate(${histogram}_bucket[$__rate_interval])))`;

const PANELS: readonly PanelSpec[] = [
  {
    title: "Jobs by phase",
    unit: "short",
    targets: [{ expr: `max by (${METRIC_LABEL.phase}) (${METRIC.jobsByPhase})`, legend: `{{${METRIC_LABEL.phase}}}` }],
  },
  {
    title: "Submissions by framework and result",
    unit: "reqps",
    targets: [
      {
        expr: `sum by (${METRIC_LABEL.framework}, ${METRIC_LABEL.result}) (rate(${METRIC.submissions}[$__rate_interval]))`,
        legend: `{{${METRIC_LABEL.framework}}} {{${METRIC_LABEL.result}}}`,
      },
    ],
  },
  {
    title: "Wait in queue",
    unit: "s",
    targets: [
      { expr: quantile(0.5, METRIC.queuedDuration), legend: "p50" },
      { expr: quantile(0.9, METRIC.queuedDuration), legend: "p90" },
    ],
  },
  {
    title: "Submission to running",
    unit: "s",
    targets: [
      { expr: quantile(0.5, METRIC.timeToRunning), legend: "p50" },
      { expr: quantile(0.9, METRIC.timeToRunning), legend: "p90" },
    ],
  },
  {
    title: "Failures by reason",
    unit: "short",
    targets: [
      {
        expr: `sum by (${METRIC_LABEL.reason}) (increase(${METRIC.transitions}{${METRIC_LABEL.to}="${"failed" satisfies Phase}"}[$__range]))`,
        legend: `{{${METRIC_LABEL.reason}}}`,
      },
    ],
  },
  {
    title: "Retries by cause",
    unit: "short",
    targets: [{ expr: `sum by (${METRIC_LABEL.cause}) (increase(${METRIC.retries}[$__range]))`, legend: `{{${METRIC_LABEL.cause}}}` }],
  },
  {
    title: "Status callbacks",
    unit: "s",
    targets: [
      { expr: quantile(0.99, METRIC.callbackDeliveryLag), legend: "delivery lag p99" },
      { expr: `sum(rate(${METRIC.callbackFailures}[$__rate_interval]))`, legend: "failures/s" },
    ],
  },
  {
    title: "Submit latency",
    unit: "s",
    targets: [{ expr: quantile(0.99, METRIC.submitDuration), legend: "p99" }],
  },
  {
    title: "GPU hours by project",
    unit: "h",
    targets: [
      { expr: `sum by (${METRIC_LABEL.project}) (increase(${METRIC.gpuSeconds}[$__range])) / 3600`, legend: `{{${METRIC_LABEL.project}}}` },
    ],
  },
  {
    title: "GPU utilisation",
    unit: "percent",
    targets: [{ expr: `avg by (Hostname, gpu) (${DCGM_GPU_UTILIZATION})`, legend: "{{Hostname}} GPU {{gpu}}" }],
  },
];

const datasource = { type: "prometheus", uid: "$datasource" };

/** Grafana's dashboard JSON model; two panels per row. */
export function trainingDashboard(): Record<string, unknown> {
  return {
    uid: TRAINING_DASHBOARD_UID,
    title: "Training jobs",
    tags: ["training-platform"],
    timezone: "browser",
    schemaVersion: 39,
    time: { from: "now-24h", to: "now" },
    refresh: "1m",
    templating: {
      list: [
        {
          name: "datasource",
          label: "Data source",
          type: "datasource",
          query: "prometheus",
          current: { text: "Prometheus", value: "prometheus" },
        },
      ],
    },
    panels: PANELS.map((panel, index) => ({
      id: index + 1,
      type: "timeseries",
      title: panel.title,
      datasource,
      gridPos: { x: (index % 2) * 12, y: Math.floor(index / 2) * 8, w: 12, h: 8 },
      fieldConfig: { defaults: { unit: panel.unit }, overrides: [] },
      targets: panel.targets.map((target, targetIndex) => ({
        refId: String.fromCharCode(65 + targetIndex),
        datasource,
        expr: target.expr,
        legendFormat: target.legend,
      })),
    })),
  };
}
