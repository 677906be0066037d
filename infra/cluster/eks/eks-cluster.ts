import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { execKubeconfig } from "../kubeconfig.ts";
import { serviceRole } from "./iam.ts";

export interface EksClusterArgs extends Pick<aws.eks.ClusterArgs, "deletionProtection"> {
  readonly clusterName: string;
  readonly region: string;
  /** Kubernetes minor version, e.g. "1.32". */
  readonly version: string;
  /** Subnets for nodes and the control plane's network interfaces. */
  readonly privateSubnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** Subnets for internet-facing load balancers. */
  readonly publicSubnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * Networks that may reach the public API endpoint.
   * @default ["0.0.0.0/0"]
   */
  readonly publicAccessCidrs?: readonly string[];
  /**
   * IAM roles or users that get cluster-admin (besides whoever creates the
   * cluster): the team, the CI role that runs `pulumi up`.
   * @default []
   */
  readonly adminPrincipalArns?: readonly string[];
}

/**
 * An EKS control plane with KMS-encrypted Secrets, the IAM role its nodes use,
 * an OIDC provider for IAM Roles for Service Accounts, and a kubeconfig.
 */
export class EksCluster extends pulumi.ComponentResource {
  readonly cluster: aws.eks.Cluster;
  /** Role of every node group's instances; depend on this component, not just the role, so its policies are attached first. */
  readonly nodeRole: aws.iam.Role;
  readonly oidcProvider: aws.iam.OpenIdConnectProvider;
  readonly oidcIssuerUrl: pulumi.Output<string>;
  /** Authenticates through `aws eks get-token` with the caller's AWS credentials; a secret. */
  readonly kubeconfig: pulumi.Output<string>;

  constructor(name: string, args: EksClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:cluster:EksCluster", name, {}, opts);
    const created = createEksCluster(name, args, this);
    this.cluster = created.cluster;
    this.nodeRole = created.nodeRole;
    this.oidcProvider = created.oidcProvider;
    this.oidcIssuerUrl = created.oidcIssuerUrl;
    this.kubeconfig = created.kubeconfig;
    this.registerOutputs({ clusterName: this.cluster.name, kubeconfig: this.kubeconfig });
  }
}

function createEksCluster(name: string, args: EksClusterArgs, parent: pulumi.Resource) {
  const opts = { parent };
  const clusterRole = serviceRole(
    `${name}-cluster`,
    { service: "eks.amazonaws.com", managedPolicyArns: [aws.iam.ManagedPolicy.AmazonEKSClusterPolicy] },
    opts,
  );
  const nodeRole = serviceRole(
    `${name}-node`,
    {
      service: "ec2.amazonaws.com",
      managedPolicyArns: [
        aws.iam.ManagedPolicy.AmazonEKSWorkerNodePolicy,
        aws.iam.ManagedPolicy.AmazonEKS_CNI_Policy,
        aws.iam.ManagedPolicy.AmazonEC2ContainerRegistryReadOnly,
      ],
    },
    opts,
  );
  const secretsKey = new aws.kms.Key(
    `${name}-secrets`,
    {
      description: `Envelope encryption of Kubernetes Secrets in ${args.clusterName}`,
      enableKeyRotation: true,
      deletionWindowInDays: 7,
    },
    opts,
  );

  const cluster = new aws.eks.Cluster(
    name,
    {
      name: args.clusterName,
      version: args.version,
      roleArn: clusterRole.role.arn,
      vpcConfig: {
        subnetIds: pulumi
          .all([args.privateSubnetIds, args.publicSubnetIds])
          .apply(([privateIds, publicIds]) => [...privateIds, ...publicIds]),
        endpointPrivateAccess: true,
        endpointPublicAccess: true,
        publicAccessCidrs: [...(args.publicAccessCidrs ?? ["0.0.0.0/0"])],
      },
      // Access entries, not the aws-auth ConfigMap; whoever runs `pulumi up` becomes cluster admin.
      accessConfig: { authenticationMode: "API", bootstrapClusterCreatorAdminPermissions: true },
      encryptionConfig: { provider: { keyArn: secretsKey.arn }, resources: ["secrets"] },
      // Who did what: cheap compared with the api log stream.
      enabledClusterLogTypes: ["audit", "authenticator"],
      deletionProtection: args.deletionProtection,
    },
    { ...opts, dependsOn: clusterRole.attachments },
  );

  for (const [index, principalArn] of (args.adminPrincipalArns ?? []).entries()) {
    const entry = new aws.eks.AccessEntry(`${name}-admin-${index}`, { clusterName: cluster.name, principalArn }, opts);
    new aws.eks.AccessPolicyAssociation(
      `${name}-admin-${index}`,
      {
        clusterName: cluster.name,
        principalArn: entry.principalArn,
        policyArn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
        accessScope: { type: "cluster" },
      },
      opts,
    );
  }

  const oidcIssuerUrl = cluster.identities.apply((identities) => {
    const issuer = identities[0]?.oidcs?.[0]?.issuer;
    if (!issuer) throw new Error(`${args.clusterName}: EKS reported no OIDC issuer`);
    return issuer;
  });
  const oidcProvider = new aws.iam.OpenIdConnectProvider(name, { url: oidcIssuerUrl, clientIdLists: ["sts.amazonaws.com"] }, opts);

  const kubeconfig = execKubeconfig({
    name: cluster.name,
    server: cluster.endpoint,
    certificateAuthorityData: cluster.certificateAuthority.data,
    exec: { command: "aws", args: ["eks", "get-token", "--cluster-name", cluster.name, "--region", args.region, "--output", "json"] },
  });
  return { cluster, nodeRole: nodeRole.role, oidcProvider, oidcIssuerUrl, kubeconfig };
}
