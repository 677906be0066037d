/**
 * The platform chart (charts-ts) rendered to objects: what `cdk8s synth` writes
 * for review is what Pulumi applies.
 */
import { App } from "cdk8s";
import { PlatformChart, type PlatformChartProps } from "../../charts-ts/platform/platform-chart.ts";

/** A Kubernetes object as cdk8s renders it. */
export interface ManifestObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Readonly<Record<string, string>> };
  readonly [field: string]: unknown;
}

export function renderPlatformChart(props: PlatformChartProps): ManifestObject[] {
  return new PlatformChart(new App(), "platform", props).toJson();
}

/** What the rest of the stack needs to know about the dispatcher, read from its rendered objects. */
export interface DispatcherManifest {
  readonly service: {
    readonly name: string;
    readonly namespace: string;
    readonly labels: Readonly<Record<string, string>>;
    readonly portName: string;
  };
  /** The Secret the Deployment mounts its tokens from. */
  readonly tokenSecretName: string;
}

interface DeploymentSpec {
  readonly template: {
    readonly spec: {
      readonly volumes: readonly { readonly secret?: { readonly secretName: string } }[];
    };
  };
}

interface ServiceSpec {
  readonly ports: readonly { readonly name?: string }[];
}

export function dispatcherManifest(objects: readonly ManifestObject[]): DispatcherManifest {
  const deployment = only(objects, "Deployment");
  const service = only(objects, "Service");
  const spec = (deployment.spec as DeploymentSpec).template.spec;
  const tokenSecretName = spec.volumes.find((volume) => volume.secret)?.secret?.secretName;
  const portName = (service.spec as ServiceSpec).ports[0]?.name;
  if (!tokenSecretName || !portName || !service.metadata.namespace || !service.metadata.labels) {
    throw new Error("the platform chart's dispatcher no longer mounts its tokens from a Secret or exposes a named port");
  }
  return {
    service: { name: service.metadata.name, namespace: service.metadata.namespace, labels: service.metadata.labels, portName },
    tokenSecretName,
  };
}

function only(objects: readonly ManifestObject[], kind: string): ManifestObject {
  const matching = objects.filter((object) => object.kind === kind);
  if (matching.length !== 1) throw new Error(`expected one ${kind} in the platform chart, found ${matching.length}`);
  return matching[0] as ManifestObject;
}
