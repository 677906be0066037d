import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { irsaRole } from "./iam.ts";

export interface EksManagedAddonsArgs {
  readonly clusterName: pulumi.Input<string>;
  readonly oidcProviderArn: pulumi.Input<string>;
  readonly oidcIssuerUrl: pulumi.Input<string>;
}

/**
 * What a fresh EKS cluster lacks for this platform: NetworkPolicy enforcement
 * (the trainer egress policy is inert without it) and an EBS CSI driver with a
 * default StorageClass (EKS >= 1.30 has none; Prometheus and Grafana need volumes).
 * Pass an AWS and a Kubernetes provider in `providers`.
 */
export class EksManagedAddons extends pulumi.ComponentResource {
  constructor(name: string, args: EksManagedAddonsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:cluster:EksManagedAddons", name, {}, opts);
    const parent = { parent: this };
    new aws.eks.Addon(
      `${name}-vpc-cni`,
      {
        clusterName: args.clusterName,
        addonName: "vpc-cni",
        configurationValues: JSON.stringify({ enableNetworkPolicy: "true" }),
        resolveConflictsOnCreate: "OVERWRITE",
        resolveConflictsOnUpdate: "OVERWRITE",
      },
      parent,
    );
    const ebsCsiRole = irsaRole(
      `${name}-ebs-csi`,
      {
        oidcProviderArn: args.oidcProviderArn,
        oidcIssuerUrl: args.oidcIssuerUrl,
        namespace: "kube-system",
        serviceAccount: "ebs-csi-controller-sa",
        managedPolicyArns: [aws.iam.ManagedPolicy.AmazonEBSCSIDriverPolicy],
      },
      parent,
    );
    const ebsCsi = new aws.eks.Addon(
      `${name}-ebs-csi`,
      {
        clusterName: args.clusterName,
        addonName: "aws-ebs-csi-driver",
        serviceAccountRoleArn: ebsCsiRole.arn,
        resolveConflictsOnCreate: "OVERWRITE",
        resolveConflictsOnUpdate: "OVERWRITE",
      },
      parent,
    );
    new k8s.storage.v1.StorageClass(
      `${name}-gp3`,
      {
        metadata: { name: "gp3", annotations: { "storageclass.kubernetes.io/is-default-class": "true" } },
        provisioner: "ebs.csi.aws.com",
        volumeBindingMode: "WaitForFirstConsumer",
        allowVolumeExpansion: true,
        parameters: { type: "gp3", encrypted: "true" },
      },
      { ...parent, dependsOn: [ebsCsi] },
    );
    this.registerOutputs({});
  }
}
