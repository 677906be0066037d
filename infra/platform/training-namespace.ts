import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { KUEUE_API_VERSION } from "../../charts-ts/kueue-contract.ts";
import type { PlatformChartProps } from "../../charts-ts/platform/platform-chart.ts";
import { platformSettings } from "../../charts-ts/settings.ts";
import { SECRET_CHECKSUM_ANNOTATION, secretChecksum } from "../secret-checksum.ts";
import { type DispatcherManifest, dispatcherManifest, type ManifestObject, renderPlatformChart } from "./platform-manifests.ts";

/** Keys of the object store Secret, as TrainingJobs read them. */
export const OBJECT_STORE_KEYS = { endpoint: "endpoint", accessKey: "access-key", secretKey: "secret-key" } as const;
/** Key of the backend ConfigMap, as TrainingJobs and the dispatcher read it. */
export const BACKEND_CONFIG_KEYS = { apiUrl: "api-url" } as const;
/** The docker-registry Secret the stack creates from its `imagePullSecret` config, for the dispatcher and the trainers. */
export const IMAGE_PULL_SECRET_NAME = "training-image-pull";
/** Keys of the dispatcher's token Secret, the files the dispatcher reads. */
export const DISPATCHER_TOKEN_KEYS = { apiToken: "api-token", backendToken: "backend-token" } as const;

export interface TrainingNamespaceArgs {
  /**
   * The platform chart's props: namespace, RBAC, quotas, priority classes,
   * network policy and the dispatcher all come from it.
   */
  readonly chart: PlatformChartProps;
  /** The backend's API base URL, for trainers' status reports and the dispatcher's callbacks. */
  readonly backendApiUrl: pulumi.Input<string>;
  readonly objectStore: {
    readonly endpoint: pulumi.Input<string>;
    readonly accessKey: pulumi.Input<string>;
    readonly secretKey: pulumi.Input<string>;
  };
  readonly dispatcherTokens: { readonly apiToken: pulumi.Input<string>; readonly backendToken: pulumi.Input<string> };
  /**
   * A docker config JSON (`.dockerconfigjson`) to pull the platform's images with: it becomes the
   * Secret IMAGE_PULL_SECRET_NAME, named by the dispatcher's pods and the Jobs it renders.
   * @default none: images are pulled without credentials
   */
  readonly imagePullSecret?: pulumi.Input<string>;
  /**
   * What must be ready before the chart's Kueue objects (queues, flavors, workload priority
   * classes) are applied: Kueue's release, whose CRDs and webhooks they need.
   * @default nothing: a cluster that already runs Kueue
   */
  readonly kueue?: readonly pulumi.Resource[];
}

/**
 * The training namespace as the platform chart defines it, plus the Secrets and
 * ConfigMap its Jobs and dispatcher read. Order: the namespace, then the Secrets,
 * then everything else, so the dispatcher's pods find their Secret at start; the
 * chart's Kueue objects (with queueing) once the namespace and `kueue` are there.
 */
export class TrainingNamespace extends pulumi.ComponentResource {
  readonly namespace: string;
  readonly dispatcher: DispatcherManifest;
  /** Creates the namespace itself; depend on it to put objects into the namespace early. */
  readonly namespaceObject: k8s.yaml.v2.ConfigGroup;

  constructor(name: string, args: TrainingNamespaceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:platform:TrainingNamespace", name, {}, opts);
    const chart: PlatformChartProps =
      args.imagePullSecret === undefined
        ? args.chart
        : { ...args.chart, platform: { ...args.chart.platform, imagePullSecret: IMAGE_PULL_SECRET_NAME } };
    const settings = platformSettings(chart.platform);
    this.namespace = settings.namespace;
    const objects = renderPlatformChart(chart);
    this.dispatcher = dispatcherManifest(objects);

    const isNamespace = (object: ManifestObject) => object.kind === "Namespace";
    const isKueueObject = (object: ManifestObject) => object.apiVersion === KUEUE_API_VERSION;
    this.namespaceObject = new k8s.yaml.v2.ConfigGroup(`${name}-namespace`, { objs: objects.filter(isNamespace) }, { parent: this });
    const inNamespace = (resourceName: string) => ({ name: resourceName, namespace: settings.namespace });
    const afterNamespace = { parent: this, dependsOn: [this.namespaceObject] };
    const configuration = [
      new k8s.core.v1.Secret(
        `${name}-object-store`,
        {
          metadata: inNamespace(settings.objectStoreSecretName),
          type: "Opaque",
          stringData: {
            [OBJECT_STORE_KEYS.endpoint]: pulumi.secret(args.objectStore.endpoint),
            [OBJECT_STORE_KEYS.accessKey]: pulumi.secret(args.objectStore.accessKey),
            [OBJECT_STORE_KEYS.secretKey]: pulumi.secret(args.objectStore.secretKey),
          },
        },
        afterNamespace,
      ),
      new k8s.core.v1.ConfigMap(
        `${name}-backend-config`,
        {
          metadata: inNamespace(settings.backendConfigMapName),
          data: { [BACKEND_CONFIG_KEYS.apiUrl]: args.backendApiUrl },
        },
        afterNamespace,
      ),
      new k8s.core.v1.Secret(
        `${name}-dispatcher-tokens`,
        {
          metadata: inNamespace(this.dispatcher.tokenSecretName),
          type: "Opaque",
          stringData: {
            [DISPATCHER_TOKEN_KEYS.apiToken]: pulumi.secret(args.dispatcherTokens.apiToken),
            [DISPATCHER_TOKEN_KEYS.backendToken]: pulumi.secret(args.dispatcherTokens.backendToken),
          },
        },
        afterNamespace,
      ),
      ...(args.imagePullSecret === undefined
        ? []
        : [
            new k8s.core.v1.Secret(
              `${name}-image-pull`,
              {
                metadata: inNamespace(IMAGE_PULL_SECRET_NAME),
                type: "kubernetes.io/dockerconfigjson",
                stringData: { ".dockerconfigjson": pulumi.secret(args.imagePullSecret) },
              },
              afterNamespace,
            ),
          ]),
    ];
    // The dispatcher reads its tokens at start: a rotation rolls it.
    const tokensChecksum = secretChecksum([args.dispatcherTokens.apiToken, args.dispatcherTokens.backendToken]);
    new k8s.yaml.v2.ConfigGroup(
      `${name}-platform`,
      {
        objs: tokensChecksum.apply((checksum) =>
          objects.filter((object) => !isNamespace(object) && !isKueueObject(object)).map(withPodAnnotation(checksum)),
        ),
      },
      { parent: this, dependsOn: configuration, transforms: [replacePriorityClassesOnImmutableChange] },
    );
    const queues = objects.filter(isKueueObject);
    if (queues.length > 0) {
      // Their kinds exist only once Kueue's CRDs do, and Kueue's webhooks validate them.
      new k8s.yaml.v2.ConfigGroup(
        `${name}-queues`,
        { objs: queues },
        { parent: this, dependsOn: [this.namespaceObject, ...(args.kueue ?? [])] },
      );
    }
    this.registerOutputs({ namespace: this.namespace });
  }
}

/**
 * A PriorityClass's `value` and `preemptionPolicy` are immutable, and the provider
 * would update them in place (refused: switching queueing on or off failed with
 * "preemptionPolicy: field is immutable"). A change replaces it, deleting first
 * since the name stays: for that moment new training pods are refused and their
 * Jobs create them again.
 */
export const replacePriorityClassesOnImmutableChange: pulumi.ResourceTransform = ({ type, props, opts }) =>
  type === "kubernetes:scheduling.k8s.io/v1:PriorityClass"
    ? { props, opts: pulumi.mergeOptions(opts, { replaceOnChanges: ["value", "preemptionPolicy"], deleteBeforeReplace: true }) }
    : undefined;

/** The dispatcher's Deployment with the tokens' checksum on its pod template; every other object as rendered. */
function withPodAnnotation(checksum: string): (object: ManifestObject) => ManifestObject {
  return (object) => {
    if (object.kind !== "Deployment") return object;
    const spec = object.spec as { template: { metadata?: { annotations?: Record<string, string> } } };
    const metadata = spec.template.metadata ?? {};
    return {
      ...object,
      spec: {
        ...spec,
        template: {
          ...spec.template,
          metadata: { ...metadata, annotations: { ...metadata.annotations, [SECRET_CHECKSUM_ANNOTATION]: checksum } },
        },
      },
    };
  };
}
