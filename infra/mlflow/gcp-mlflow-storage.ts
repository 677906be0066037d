import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { workloadIdentityServiceAccount } from "../cluster/gke/workload-identity.ts";
import { MLFLOW_DATABASE, type MlflowArtifacts, type MlflowDatabase } from "./mlflow.ts";

export interface GcpMlflowStorageArgs extends Pick<gcp.sql.DatabaseInstanceArgs, "databaseVersion"> {
  readonly project: string;
  readonly region: string;
  /** The cluster's VPC network (name); the database gets a private IP in it and no public one. */
  readonly network: string;
  /** Names the Google service account. */
  readonly clusterName: string;
  readonly tier: string;
  readonly diskSizeGb: number;
  readonly highAvailability: boolean;
  readonly databasePassword: pulumi.Input<string>;
  /** Refuse to delete the database and a non-empty bucket. */
  readonly deletionProtection: boolean;
  /** Cost labels for the database, which the provider's default labels do not reach. */
  readonly labels: Readonly<Record<string, string>>;
  /** The Workload Identity binding: MLflow's namespace and ServiceAccount. */
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** MLflow's backing stores on GCP: a private Cloud SQL Postgres and a private GCS bucket reached through Workload Identity. */
export class GcpMlflowStorage extends pulumi.ComponentResource {
  readonly database: MlflowDatabase;
  readonly artifacts: MlflowArtifacts;
  readonly bucket: gcp.storage.Bucket;

  constructor(name: string, args: GcpMlflowStorageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:mlflow:GcpMlflowStorage", name, {}, opts);
    const parent = { parent: this };
    this.bucket = new gcp.storage.Bucket(
      name,
      {
        project: args.project,
        location: args.region,
        uniformBucketLevelAccess: true,
        publicAccessPrevention: "enforced",
        forceDestroy: !args.deletionProtection,
      },
      parent,
    );
    const identity = workloadIdentityServiceAccount(
      `${name}-artifacts`,
      {
        project: args.project,
        accountId: `${args.clusterName}-mlflow`,
        namespace: args.namespace,
        serviceAccount: args.serviceAccount,
      },
      parent,
    );
    new gcp.storage.BucketIAMMember(
      name,
      {
        bucket: this.bucket.name,
        role: "roles/storage.objectAdmin",
        member: pulumi.interpolate`serviceAccount:${identity.email}`,
      },
      parent,
    );

    const network = `projects/${args.project}/global/networks/${args.network}`;
    // Private services access: Cloud SQL gets an address inside the VPC, so it needs no public IP.
    const peeringRange = new gcp.compute.GlobalAddress(
      `${name}-sql-peering`,
      {
        project: args.project,
        network,
        purpose: "VPC_PEERING",
        addressType: "INTERNAL",
        prefixLength: 20,
      },
      parent,
    );
    const peering = new gcp.servicenetworking.Connection(
      `${name}-sql-peering`,
      {
        network,
        service: "servicenetworking.googleapis.com",
        reservedPeeringRanges: [peeringRange.name],
      },
      parent,
    );
    const instance = new gcp.sql.DatabaseInstance(
      name,
      {
        project: args.project,
        region: args.region,
        databaseVersion: args.databaseVersion,
        deletionProtection: args.deletionProtection,
        settings: {
          tier: args.tier,
          diskSize: args.diskSizeGb,
          availabilityType: args.highAvailability ? "REGIONAL" : "ZONAL",
          ipConfiguration: { ipv4Enabled: false, privateNetwork: network, sslMode: "ENCRYPTED_ONLY" },
          backupConfiguration: { enabled: true, pointInTimeRecoveryEnabled: true },
          deletionProtectionEnabled: args.deletionProtection,
          userLabels: args.labels,
        },
      },
      { ...parent, dependsOn: [peering] },
    );
    const database = new gcp.sql.Database(name, { project: args.project, instance: instance.name, name: MLFLOW_DATABASE.name }, parent);
    const user = new gcp.sql.User(
      name,
      {
        project: args.project,
        instance: instance.name,
        name: MLFLOW_DATABASE.username,
        password: pulumi.secret(args.databasePassword),
      },
      parent,
    );

    // The host carries the database and user as dependencies: MLflow must not start before they exist.
    const host = pulumi.all([instance.privateIpAddress, database.name, user.name]).apply(([address]) => address);
    this.database = { kind: "external", host, port: 5432 };
    this.artifacts = { kind: "gcs", bucket: this.bucket.name, serviceAccountEmail: identity.email };
    this.registerOutputs({ bucket: this.bucket.name, databaseHost: instance.privateIpAddress });
  }
}
