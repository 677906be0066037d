import * as pulumi from "@pulumi/pulumi";
import { IRSA_ROLE_ANNOTATION, irsaRole } from "../cluster/eks/iam.ts";
import { pinnedRelease, type ReleaseSettings } from "../helm-charts.ts";

export interface ClusterAutoscalerArgs {
  readonly clusterName: string;
  readonly region: string;
  /** The control plane's minor version; the autoscaler's must match it. */
  readonly kubernetesVersion: string;
  readonly oidcProviderArn: pulumi.Input<string>;
  readonly oidcIssuerUrl: pulumi.Input<string>;
  /** @default the public chart, Helm waiting 600 s */
  readonly releases?: ReleaseSettings;
}

const NAMESPACE = "kube-system";
const SERVICE_ACCOUNT = "cluster-autoscaler";

/**
 * Scales EKS node groups, GPU groups from and to zero: without it a group at
 * minSize 0 never gets a node. Reads labels and taints of empty managed groups
 * from the EKS API. Pass an AWS and a Kubernetes provider in `providers`.
 */
export class ClusterAutoscaler extends pulumi.ComponentResource {
  constructor(name: string, args: ClusterAutoscalerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:addons:ClusterAutoscaler", name, {}, opts);
    const role = irsaRole(
      name,
      {
        oidcProviderArn: args.oidcProviderArn,
        oidcIssuerUrl: args.oidcIssuerUrl,
        namespace: NAMESPACE,
        serviceAccount: SERVICE_ACCOUNT,
        inlinePolicy: JSON.stringify(autoscalerPolicy(args.clusterName)),
      },
      { parent: this },
    );
    pinnedRelease(
      name,
      "clusterAutoscaler",
      {
        namespace: NAMESPACE,
        values: {
          cloudProvider: "aws",
          awsRegion: args.region,
          autoDiscovery: { clusterName: args.clusterName },
          image: { tag: `v${args.kubernetesVersion}.0` },
          rbac: { serviceAccount: { name: SERVICE_ACCOUNT, annotations: { [IRSA_ROLE_ANNOTATION]: role.arn } } },
          priorityClassName: "system-cluster-critical",
          extraArgs: {
            // Empty GPU nodes cost the most: remove them soon after their last job.
            "scale-down-unneeded-time": "5m",
            "balance-similar-node-groups": true,
            expander: "least-waste",
          },
        },
      },
      args.releases ?? {},
      { parent: this },
    );
    this.registerOutputs({});
  }
}

/** What the autoscaler may do, from its AWS guide: describe everything, resize only this cluster's groups. */
function autoscalerPolicy(clusterName: string) {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Action: [
          "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeAutoScalingInstances",
          "autoscaling:DescribeLaunchConfigurations",
          "autoscaling:DescribeScalingActivities",
          "autoscaling:DescribeTags",
          "ec2:DescribeImages",
          "ec2:DescribeInstanceTypes",
          "ec2:DescribeLaunchTemplateVersions",
          "ec2:GetInstanceTypesFromInstanceRequirements",
          "eks:DescribeNodegroup",
        ],
        Resource: "*",
      },
      {
        Effect: "Allow",
        Action: ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
        Resource: "*",
        Condition: { StringEquals: { [`aws:ResourceTag/k8s.io/cluster-autoscaler/${clusterName}`]: "owned" } },
      },
    ],
  };
}
