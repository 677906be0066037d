import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { irsaRole } from "../cluster/eks/iam.ts";
import { MLFLOW_DATABASE, type MlflowArtifacts, type MlflowDatabase } from "./mlflow.ts";

export interface AwsMlflowStorageArgs extends Pick<aws.rds.InstanceArgs, "instanceClass" | "engineVersion" | "multiAz"> {
  readonly region: string;
  /** The cluster's VPC and private subnets; the database is reachable from nowhere else. */
  readonly vpcId: pulumi.Input<string>;
  readonly privateSubnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** Security group of the cluster's nodes (EKS' cluster security group), the only one allowed to connect. */
  readonly nodeSecurityGroupId: pulumi.Input<string>;
  readonly allocatedStorageGiB: number;
  readonly databasePassword: pulumi.Input<string>;
  /** Refuse to delete the database and a non-empty bucket; keep a final snapshot. */
  readonly deletionProtection: boolean;
  /** The IRSA binding: MLflow's namespace and ServiceAccount. */
  readonly oidcProviderArn: pulumi.Input<string>;
  readonly oidcIssuerUrl: pulumi.Input<string>;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** MLflow's backing stores on AWS: a private RDS Postgres and a private S3 bucket reached through IRSA. */
export class AwsMlflowStorage extends pulumi.ComponentResource {
  readonly database: MlflowDatabase;
  readonly artifacts: MlflowArtifacts;
  readonly bucket: aws.s3.Bucket;

  constructor(name: string, args: AwsMlflowStorageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:mlflow:AwsMlflowStorage", name, {}, opts);
    const parent = { parent: this };
    this.bucket = privateBucket(name, args.deletionProtection, this);
    const role = irsaRole(
      `${name}-artifacts`,
      {
        oidcProviderArn: args.oidcProviderArn,
        oidcIssuerUrl: args.oidcIssuerUrl,
        namespace: args.namespace,
        serviceAccount: args.serviceAccount,
        inlinePolicy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            { Effect: "Allow", Action: ["s3:ListBucket", "s3:GetBucketLocation"], Resource: this.bucket.arn },
            {
              Effect: "Allow",
              Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
              Resource: pulumi.interpolate`${this.bucket.arn}/*`,
            },
          ],
        }),
      },
      parent,
    );

    const subnetGroup = new aws.rds.SubnetGroup(name, { subnetIds: args.privateSubnetIds }, parent);
    const securityGroup = new aws.ec2.SecurityGroup(
      name,
      {
        vpcId: args.vpcId,
        description: "MLflow's Postgres: connections from the cluster's nodes only",
        ingress: [{ protocol: "tcp", fromPort: 5432, toPort: 5432, securityGroups: [args.nodeSecurityGroupId] }],
      },
      parent,
    );
    const instance = new aws.rds.Instance(
      name,
      {
        engine: "postgres",
        engineVersion: args.engineVersion,
        instanceClass: args.instanceClass,
        multiAz: args.multiAz,
        allocatedStorage: args.allocatedStorageGiB,
        storageType: "gp3",
        storageEncrypted: true,
        dbName: MLFLOW_DATABASE.name,
        username: MLFLOW_DATABASE.username,
        password: pulumi.secret(args.databasePassword),
        dbSubnetGroupName: subnetGroup.name,
        vpcSecurityGroupIds: [securityGroup.id],
        publiclyAccessible: false,
        backupRetentionPeriod: 7,
        deletionProtection: args.deletionProtection,
        skipFinalSnapshot: !args.deletionProtection,
        ...(args.deletionProtection && { finalSnapshotIdentifier: `${name}-final` }),
      },
      parent,
    );

    this.database = { kind: "external", host: instance.address, port: instance.port };
    this.artifacts = { kind: "s3", bucket: this.bucket.bucket, region: args.region, roleArn: role.arn };
    this.registerOutputs({ bucket: this.bucket.bucket, databaseHost: instance.address });
  }
}

/** A bucket no policy or ACL can open to the public, encrypted, with ACLs disabled. */
function privateBucket(name: string, deletionProtection: boolean, parent: pulumi.Resource): aws.s3.Bucket {
  const bucket = new aws.s3.Bucket(name, { forceDestroy: !deletionProtection }, { parent });
  const ofBucket = { parent: bucket };
  new aws.s3.BucketPublicAccessBlock(
    name,
    {
      bucket: bucket.id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    },
    ofBucket,
  );
  new aws.s3.BucketOwnershipControls(name, { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } }, ofBucket);
  new aws.s3.BucketServerSideEncryptionConfiguration(
    name,
    {
      bucket: bucket.id,
      rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }],
    },
    ofBucket,
  );
  return bucket;
}
