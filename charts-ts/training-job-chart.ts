import { App, Chart } from "cdk8s";
import type { Construct } from "constructs";
import type { TrainingRequest } from "./request.ts";
import { type PlatformSettingsProps, platformSettings } from "./settings.ts";
import { TrainingJob } from "./training-job.ts";

export interface TrainingJobChartProps {
  readonly request: TrainingRequest;
  /**
   * Cluster-wide settings.
   * @default DEFAULT_PLATFORM_SETTINGS
   */
  readonly platform?: PlatformSettingsProps;
}

/** A chart of one TrainingJob in the platform's training namespace. */
export class TrainingJobChart extends Chart {
  readonly trainingJob: TrainingJob;

  constructor(scope: Construct, id: string, props: TrainingJobChartProps) {
    const platform = platformSettings(props.platform);
    super(scope, id, { namespace: platform.namespace });
    this.trainingJob = new TrainingJob(this, "job", { request: props.request, platform });
  }
}

/** A Kubernetes object as JSON, as the API server receives it. */
export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly [key: string]: unknown };
  readonly [key: string]: unknown;
}

/**
 * The Job for a request, as the dispatcher submits it: the same chart
 * `cdk8s synth` writes, so review YAML and runtime objects cannot drift.
 */
export function renderTrainingJob(request: TrainingRequest, platform?: PlatformSettingsProps): Manifest {
  const chart = new TrainingJobChart(new App(), "training-job", { request, ...(platform && { platform }) });
  const [manifest, ...rest] = chart.toJson() as Manifest[];
  if (!manifest || rest.length > 0)
    throw new Error(`a TrainingJob chart must hold one object, it holds ${rest.length + (manifest ? 1 : 0)}`);
  return manifest;
}
