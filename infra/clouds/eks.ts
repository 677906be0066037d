import * as aws from "@pulumi/aws";
import * as k8s from "@pulumi/kubernetes";
import { ClusterAutoscaler } from "../addons/cluster-autoscaler.ts";
import { EksCluster } from "../cluster/eks/eks-cluster.ts";
import { EksManagedAddons } from "../cluster/eks/managed-addons.ts";
import { EksNetwork } from "../cluster/eks/network.ts";
import type { StackConfig } from "../config/load-stack-config.ts";
import { AwsMlflowStorage } from "../mlflow/aws-mlflow-storage.ts";
import { EksNodeGroup } from "../nodes/eks-node-group.ts";
import { type ClusterFoundation, type FoundationContext, KUBERNETES_PROVIDER_SETTINGS } from "./cluster-foundation.ts";

/** An EKS cluster with a system node group, GPU node groups that scale to zero, RDS and S3 for MLflow. */
export function eksFoundation(config: Extract<StackConfig, { cloud: "eks" }>, context: FoundationContext): ClusterFoundation {
  const { eks, clusterName } = config;
  // Default tags reach every AWS resource this provider manages; EC2 instances get theirs from launch templates.
  const awsProvider = new aws.Provider("aws", { region: eks.region, defaultTags: { tags: context.tags } });
  const onAws = { providers: [awsProvider] };

  const network = new EksNetwork("network", { clusterName, ...eks.network }, onAws);
  const cluster = new EksCluster(
    "cluster",
    {
      clusterName,
      region: eks.region,
      version: eks.kubernetesVersion,
      privateSubnetIds: network.privateSubnetIds,
      publicSubnetIds: network.publicSubnetIds,
      publicAccessCidrs: eks.publicAccessCidrs,
      adminPrincipalArns: eks.clusterAdmins,
      deletionProtection: config.deletionProtection,
    },
    onAws,
  );

  const nodeGroup = { clusterName: cluster.cluster.name, nodeRoleArn: cluster.nodeRole.arn, subnetIds: network.privateSubnetIds };
  const afterCluster = { ...onAws, dependsOn: [cluster] };
  const systemNodes = new EksNodeGroup(
    "system",
    {
      ...nodeGroup,
      instanceTypes: eks.systemNodes.instanceTypes,
      minSize: eks.systemNodes.minSize,
      maxSize: eks.systemNodes.maxSize,
      instanceTags: context.tags,
    },
    afterCluster,
  );
  for (const pool of config.gpuPools) {
    new EksNodeGroup(
      `gpu-${pool.name}`,
      {
        ...nodeGroup,
        gpuType: pool.gpuType,
        amiType: pool.amiType,
        instanceTypes: [pool.instanceType],
        spot: pool.spot,
        minSize: pool.minSize,
        maxSize: pool.maxSize,
        diskSizeGiB: pool.diskSizeGiB,
        instanceTags: context.tags,
      },
      afterCluster,
    );
  }

  const kubernetes = new k8s.Provider("eks", { kubeconfig: cluster.kubeconfig, ...KUBERNETES_PROVIDER_SETTINGS });
  const onAwsAndCluster = { providers: [awsProvider, kubernetes], dependsOn: [systemNodes] };
  const oidc = { oidcProviderArn: cluster.oidcProvider.arn, oidcIssuerUrl: cluster.oidcIssuerUrl };
  const addons = new EksManagedAddons("addons", { clusterName: cluster.cluster.name, ...oidc }, onAwsAndCluster);
  new ClusterAutoscaler(
    "cluster-autoscaler",
    { clusterName, region: eks.region, kubernetesVersion: eks.kubernetesVersion, ...oidc, releases: context.releases },
    onAwsAndCluster,
  );

  const mlflowStorage = new AwsMlflowStorage(
    "mlflow",
    {
      region: eks.region,
      vpcId: cluster.cluster.vpcConfig.vpcId,
      privateSubnetIds: network.privateSubnetIds,
      nodeSecurityGroupId: cluster.cluster.vpcConfig.clusterSecurityGroupId,
      ...config.mlflow.database,
      databasePassword: config.secrets.mlflowDbPassword,
      deletionProtection: config.deletionProtection,
      ...oidc,
      ...context.mlflowIdentity,
    },
    onAws,
  );

  return {
    kubernetes,
    ready: [systemNodes, addons],
    mlflow: mlflowStorage,
    installDevicePlugin: true,
    outputs: {
      clusterName: cluster.cluster.name,
      region: eks.region,
      kubeconfig: cluster.kubeconfig,
      mlflowArtifactsBucket: mlflowStorage.bucket.bucket,
    },
  };
}
