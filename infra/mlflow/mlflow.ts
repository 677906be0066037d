import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { IRSA_ROLE_ANNOTATION } from "../cluster/eks/iam.ts";
import { WORKLOAD_IDENTITY_ANNOTATION } from "../cluster/gke/workload-identity.ts";
import { DEFAULT_RELEASE_TIMEOUT_SECONDS, HELM_CHARTS, pinnedRelease, type ReleaseSettings } from "../helm-charts.ts";
import { SECRET_CHECKSUM_ANNOTATION, secretChecksum } from "../secret-checksum.ts";
import { InClusterPostgres } from "./in-cluster-postgres.ts";
import type { MlflowEndpoint } from "./mlflow-endpoint.ts";

/** The ServiceAccount MLflow runs as; cloud identities (IRSA, Workload Identity) are bound to it. */
export const MLFLOW_SERVICE_ACCOUNT = "mlflow";
/** The chart's pod selector label (its name: no nameOverride is set), for the trainers' NetworkPolicy. */
export const MLFLOW_POD_LABELS = { "app.kubernetes.io/name": HELM_CHARTS.mlflow.chart } as const;
/** The port MLflow listens on in its pod (the chart's default), which NetworkPolicies must allow. */
export const MLFLOW_CONTAINER_PORT = 5000;
/** Database and user MLflow owns. */
export const MLFLOW_DATABASE = { name: "mlflow", username: "mlflow" } as const;

const DATABASE_SECRET_KEYS = { username: "username", password: "password" } as const;

/** Where MLflow keeps runs, params and metrics. */
export type MlflowDatabase =
  /** A managed Postgres (RDS, Cloud SQL) that already has MLFLOW_DATABASE. */
  | { readonly kind: "external"; readonly host: pulumi.Input<string>; readonly port: pulumi.Input<number> }
  /** A single Postgres pod with a volume, for a local cluster. */
  | {
      readonly kind: "in-cluster";
      readonly storageGi: number;
      /** @default the cluster's default StorageClass */
      readonly storageClassName?: string;
    };

/** Where MLflow keeps artifacts (models, checkpoints, plots); it proxies them, so trainers need no bucket credentials. */
export type MlflowArtifacts =
  /** S3 through IAM Roles for Service Accounts. */
  | { readonly kind: "s3"; readonly bucket: pulumi.Input<string>; readonly region: string; readonly roleArn: pulumi.Input<string> }
  /** GCS through Workload Identity. */
  | { readonly kind: "gcs"; readonly bucket: pulumi.Input<string>; readonly serviceAccountEmail: pulumi.Input<string> }
  /** An S3-compatible store (e.g. R2) with static keys, where no cloud identity exists. */
  | {
      readonly kind: "s3-compatible";
      readonly bucket: string;
      readonly path: string;
      readonly endpoint: pulumi.Input<string>;
      readonly accessKeyId: pulumi.Input<string>;
      readonly secretAccessKey: pulumi.Input<string>;
    };

export interface MlflowArgs {
  /** Service name, namespace and port the tracking URI points at. */
  readonly endpoint: MlflowEndpoint;
  readonly database: MlflowDatabase;
  /** Password of MLFLOW_DATABASE's user; reaches MLflow only as a Secret reference. */
  readonly databasePassword: pulumi.Input<string>;
  readonly artifacts: MlflowArtifacts;
  /** Chart source and how long Helm and the Postgres rollout may take. @default the public chart, 600 s */
  readonly releases?: ReleaseSettings;
}

/** MLflow tracking server (community-charts/mlflow) with Postgres and object-store artifacts. */
export class Mlflow extends pulumi.ComponentResource {
  readonly release: k8s.helm.v3.Release;

  constructor(name: string, args: MlflowArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:mlflow:Mlflow", name, {}, opts);
    this.release = createMlflow(name, args, this);
    this.registerOutputs({});
  }
}

function createMlflow(name: string, args: MlflowArgs, parent: pulumi.Resource): k8s.helm.v3.Release {
  const namespaceName = args.endpoint.namespace;
  const namespace = new k8s.core.v1.Namespace(
    name,
    {
      metadata: { name: namespaceName, labels: { "pod-security.kubernetes.io/enforce": "restricted" } },
    },
    { parent },
  );
  const inNamespace = { parent, dependsOn: [namespace] };
  const databaseSecret = new k8s.core.v1.Secret(
    `${name}-database`,
    {
      metadata: { name: "mlflow-database", namespace: namespaceName },
      type: "Opaque",
      stringData: {
        [DATABASE_SECRET_KEYS.username]: MLFLOW_DATABASE.username,
        [DATABASE_SECRET_KEYS.password]: pulumi.secret(args.databasePassword),
      },
    },
    inNamespace,
  );

  const releases = args.releases ?? {};
  const database =
    args.database.kind === "external"
      ? args.database
      : new InClusterPostgres(
          `${name}-postgres`,
          {
            namespace: namespaceName,
            storageGi: args.database.storageGi,
            ...(args.database.storageClassName !== undefined && { storageClassName: args.database.storageClassName }),
            readyTimeoutSeconds: releases.timeoutSeconds ?? DEFAULT_RELEASE_TIMEOUT_SECONDS,
            database: MLFLOW_DATABASE.name,
            password: args.databasePassword,
            credentials: {
              secretName: databaseSecret.metadata.name,
              usernameKey: DATABASE_SECRET_KEYS.username,
              passwordKey: DATABASE_SECRET_KEYS.password,
            },
          },
          { parent },
        );

  const artifacts = artifactStore(name, args.artifacts, namespaceName, inNamespace);
  return pinnedRelease(
    name,
    "mlflow",
    {
      namespace: namespaceName,
      values: {
        // The Service takes the tracking URI's host name, so trainers find it where they look.
        fullnameOverride: args.endpoint.serviceName,
        service: { port: args.endpoint.port, containerPort: MLFLOW_CONTAINER_PORT },
        serviceAccount: { create: true, name: MLFLOW_SERVICE_ACCOUNT, annotations: artifacts.serviceAccountAnnotations },
        podSecurityContext: { seccompProfile: { type: "RuntimeDefault" } },
        // MLflow reads its database password and artifact keys at start: a rotation rolls its pods.
        podAnnotations: { [SECRET_CHECKSUM_ANNOTATION]: secretChecksum([args.databasePassword, ...artifacts.secretValues]) },
        backendStore: {
          databaseMigration: true,
          databaseConnectionCheck: true,
          postgres: { enabled: true, host: database.host, port: database.port, database: MLFLOW_DATABASE.name },
          existingDatabaseSecret: {
            name: databaseSecret.metadata.name,
            usernameKey: DATABASE_SECRET_KEYS.username,
            passwordKey: DATABASE_SECRET_KEYS.password,
          },
        },
        artifactRoot: { proxiedArtifactStorage: true, ...artifacts.artifactRoot },
        extraEnvVars: artifacts.env,
        extraSecretNamesForEnvFrom: artifacts.envFromSecrets,
        resources: { requests: { cpu: "250m", memory: "512Mi" }, limits: { memory: "2Gi" } },
      },
    },
    releases,
    { parent },
  );
}

interface ArtifactStoreValues {
  readonly artifactRoot: Record<string, unknown>;
  readonly serviceAccountAnnotations: pulumi.Input<Record<string, pulumi.Input<string>>>;
  readonly env: Record<string, string>;
  readonly envFromSecrets: pulumi.Input<string>[];
  /** What the pod reads from those Secrets, for its checksum annotation. */
  readonly secretValues: pulumi.Input<string>[];
}

function artifactStore(
  name: string,
  artifacts: MlflowArtifacts,
  namespace: string,
  opts: pulumi.CustomResourceOptions,
): ArtifactStoreValues {
  switch (artifacts.kind) {
    case "s3":
      return {
        artifactRoot: { s3: { enabled: true, bucket: artifacts.bucket, path: "artifacts" } },
        serviceAccountAnnotations: { [IRSA_ROLE_ANNOTATION]: artifacts.roleArn },
        env: { AWS_DEFAULT_REGION: artifacts.region },
        envFromSecrets: [],
        secretValues: [],
      };
    case "gcs":
      return {
        artifactRoot: { gcs: { enabled: true, bucket: artifacts.bucket, path: "artifacts" } },
        serviceAccountAnnotations: { [WORKLOAD_IDENTITY_ANNOTATION]: artifacts.serviceAccountEmail },
        env: {},
        envFromSecrets: [],
        secretValues: [],
      };
    case "s3-compatible": {
      // Keys and endpoint reach the pod as environment from a Secret, never as chart values.
      const credentials = new k8s.core.v1.Secret(
        `${name}-artifact-store`,
        {
          metadata: { name: "mlflow-artifact-store", namespace },
          type: "Opaque",
          stringData: {
            AWS_ACCESS_KEY_ID: pulumi.secret(artifacts.accessKeyId),
            AWS_SECRET_ACCESS_KEY: pulumi.secret(artifacts.secretAccessKey),
            MLFLOW_S3_ENDPOINT_URL: pulumi.secret(artifacts.endpoint),
          },
        },
        opts,
      );
      return {
        artifactRoot: { s3: { enabled: true, bucket: artifacts.bucket, path: artifacts.path } },
        serviceAccountAnnotations: {},
        env: {},
        envFromSecrets: [credentials.metadata.name],
        secretValues: [artifacts.accessKeyId, artifacts.secretAccessKey, artifacts.endpoint],
      };
    }
  }
}
