import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { DISPATCHER_SCRAPE_JOB } from "../../dispatcher/metric-names.ts";
import { pinnedRelease, type ReleaseSettings } from "../helm-charts.ts";
import type { DispatcherManifest } from "../platform/platform-manifests.ts";
import { SECRET_CHECKSUM_ANNOTATION, secretChecksum } from "../secret-checksum.ts";
import { TRAINING_ALERT_GROUPS } from "./alert-rules.ts";
import { TRAINING_DASHBOARD_UID, trainingDashboard } from "./training-dashboard.ts";

/** ConfigMaps with this label (value "1") are loaded into Grafana by its dashboard sidecar. */
const GRAFANA_DASHBOARD_LABEL = "grafana_dashboard";

const GRAFANA_ADMIN_KEYS = { user: "admin-user", password: "admin-password" } as const;

export interface MonitoringArgs {
  /** @default "monitoring" */
  readonly namespace?: string;
  /** How long Prometheus keeps samples, e.g. "15d". */
  readonly retention: string;
  /** Size of Prometheus' volume. */
  readonly storageGi: number;
  /** StorageClass of Prometheus' volume. @default the cluster's default StorageClass */
  readonly storageClassName?: string;
  readonly grafanaAdminPassword: pulumi.Input<string>;
  /** The dispatcher's Service, as the platform chart renders it. */
  readonly dispatcherService: DispatcherManifest["service"];
  /** Creates the dispatcher's namespace; its ServiceMonitor waits for it. */
  readonly dispatcherNamespace: pulumi.Resource;
  /** @default the public chart, Helm waiting 600 s */
  readonly releases?: ReleaseSettings;
}

/**
 * kube-prometheus-stack (Prometheus, Alertmanager, Grafana), scraping the
 * dispatcher, with the platform's alert rules and its Training jobs dashboard.
 */
export class Monitoring extends pulumi.ComponentResource {
  readonly namespace: string;
  /** The release that installs the monitoring CRDs; depend on it before declaring ServiceMonitors. */
  readonly stack: k8s.helm.v3.Release;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:monitoring:Monitoring", name, {}, opts);
    this.namespace = args.namespace ?? "monitoring";
    this.stack = createMonitoring(name, this.namespace, args, this);
    this.registerOutputs({ namespace: this.namespace });
  }
}

function createMonitoring(name: string, namespaceName: string, args: MonitoringArgs, parent: pulumi.Resource): k8s.helm.v3.Release {
  const namespace = new k8s.core.v1.Namespace(name, { metadata: { name: namespaceName } }, { parent });
  const inNamespace = { parent, dependsOn: [namespace] };
  const grafanaAdmin = new k8s.core.v1.Secret(
    `${name}-grafana-admin`,
    {
      metadata: { name: "grafana-admin", namespace: namespaceName },
      type: "Opaque",
      stringData: { [GRAFANA_ADMIN_KEYS.user]: "admin", [GRAFANA_ADMIN_KEYS.password]: pulumi.secret(args.grafanaAdminPassword) },
    },
    inNamespace,
  );

  const stack = pinnedRelease(
    name,
    "kubePrometheusStack",
    {
      namespace: namespaceName,
      values: {
        prometheus: {
          prometheusSpec: {
            retention: args.retention,
            storageSpec: {
              volumeClaimTemplate: {
                spec: {
                  accessModes: ["ReadWriteOnce"],
                  ...(args.storageClassName !== undefined && { storageClassName: args.storageClassName }),
                  resources: { requests: { storage: `${args.storageGi}Gi` } },
                },
              },
            },
            // Select every ServiceMonitor and PrometheusRule, not only those labelled with this release.
            serviceMonitorSelectorNilUsesHelmValues: false,
            podMonitorSelectorNilUsesHelmValues: false,
            ruleSelectorNilUsesHelmValues: false,
          },
        },
        grafana: {
          admin: { existingSecret: grafanaAdmin.metadata.name, userKey: GRAFANA_ADMIN_KEYS.user, passwordKey: GRAFANA_ADMIN_KEYS.password },
          sidecar: { dashboards: { enabled: true, label: GRAFANA_DASHBOARD_LABEL, labelValue: "1", searchNamespace: "ALL" } },
          // Without persistence Grafana sets the admin password from the Secret at each start: a rotation rolls it.
          podAnnotations: { [SECRET_CHECKSUM_ANNOTATION]: secretChecksum([args.grafanaAdminPassword]) },
        },
      },
    },
    args.releases ?? {},
    { parent, dependsOn: [grafanaAdmin] },
  );
  const afterStack = { parent, dependsOn: [stack] };

  const dispatcher = args.dispatcherService;
  new k8s.apiextensions.CustomResource(
    `${name}-dispatcher`,
    {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "ServiceMonitor",
      metadata: { name: dispatcher.name, namespace: dispatcher.namespace },
      spec: {
        selector: { matchLabels: dispatcher.labels },
        endpoints: [
          {
            port: dispatcher.portName,
            path: "/metrics",
            interval: "30s",
            // The alert rules and dashboards select the dispatcher by this job name, whatever the Service is called.
            relabelings: [{ action: "replace", targetLabel: "job", replacement: DISPATCHER_SCRAPE_JOB }],
          },
        ],
      },
    },
    { parent, dependsOn: [stack, args.dispatcherNamespace] },
  );

  new k8s.apiextensions.CustomResource(
    `${name}-training-alerts`,
    {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "PrometheusRule",
      metadata: { name: "training-platform", namespace: namespaceName },
      spec: { groups: TRAINING_ALERT_GROUPS },
    },
    afterStack,
  );

  new k8s.core.v1.ConfigMap(
    `${name}-training-dashboard`,
    {
      metadata: { name: `${TRAINING_DASHBOARD_UID}-dashboard`, namespace: namespaceName, labels: { [GRAFANA_DASHBOARD_LABEL]: "1" } },
      data: { [`${TRAINING_DASHBOARD_UID}.json`]: JSON.stringify(trainingDashboard()) },
    },
    inNamespace,
  );
  return stack;
}
