import { App } from "cdk8s";
import { PlatformChart } from "./platform/platform-chart.ts";
import { trainingRequest } from "./request.ts";
import { SAMPLE_REQUESTS } from "./samples.ts";
import type { PlatformSettingsProps } from "./settings.ts";
import { TrainingJobChart } from "./training-job-chart.ts";

export interface PlatformAppProps {
  /**
   * Where synth writes the YAML.
   * @default "dist" (cdk8s-cli passes CDK8S_OUTDIR)
   */
  readonly outdir?: string;
  /** @default DEFAULT_PLATFORM_SETTINGS */
  readonly platform?: PlatformSettingsProps;
}

/** The review app: the platform chart and one chart per sample request. */
export function platformApp(props: PlatformAppProps = {}): App {
  const app = new App(props.outdir !== undefined ? { outdir: props.outdir } : {});
  new PlatformChart(app, "platform", props.platform && { platform: props.platform });
  for (const [id, input] of Object.entries(SAMPLE_REQUESTS)) {
    new TrainingJobChart(app, id, { request: trainingRequest(input), ...(props.platform && { platform: props.platform }) });
  }
  return app;
}
