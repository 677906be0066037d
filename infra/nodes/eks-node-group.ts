import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { GPU_TAINT_FOR_NODE_POOLS, gpuNodeLabels } from "../gpu-nodes.ts";

/**
 * EKS AMI types that ship the NVIDIA driver and container toolkit but no device
 * plugin of their own (we install one). Bottlerocket's NVIDIA variants bundle a
 * plugin and would advertise the GPUs twice.
 */
export const NVIDIA_AMI_TYPES = ["AL2023_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA"] as const;

export interface EksNodeGroupArgs extends Pick<aws.eks.NodeGroupArgs, "clusterName" | "nodeRoleArn" | "subnetIds" | "instanceTypes"> {
  /**
   * Makes this a GPU group: the GPU labels with this `gpu-type` value, the GPU
   * taint and an NVIDIA AMI.
   */
  readonly gpuType?: string;
  /**
   * AMI type; a GPU group needs one of NVIDIA_AMI_TYPES.
   * @default "AL2023_x86_64_NVIDIA" for a GPU group, else "AL2023_x86_64_STANDARD"
   */
  readonly amiType?: string;
  /**
   * Spot capacity: much cheaper, reclaimed with two minutes' notice. Trainers
   * checkpoint on SIGTERM and preempted pods retry without counting as failures.
   * @default false
   */
  readonly spot?: boolean;
  /** 0 lets the cluster autoscaler remove every node while no pod needs one. */
  readonly minSize: number;
  readonly maxSize: number;
  /**
   * Root volume; GPU nodes pull multi-GB CUDA images.
   * @default 50
   */
  readonly diskSizeGiB?: number;
  /** Cost tags for the EC2 instances and volumes, which a node group's own tags never reach. */
  readonly instanceTags: Readonly<Record<string, string>>;
}

/** An EKS managed node group on a launch template that tags its instances and volumes. */
export class EksNodeGroup extends pulumi.ComponentResource {
  readonly nodeGroup: aws.eks.NodeGroup;
  readonly launchTemplate: aws.ec2.LaunchTemplate;

  constructor(name: string, args: EksNodeGroupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:nodes:EksNodeGroup", name, {}, opts);
    const { nodeGroup, launchTemplate } = createNodeGroup(name, args, this);
    this.nodeGroup = nodeGroup;
    this.launchTemplate = launchTemplate;
    this.registerOutputs({ nodeGroupName: nodeGroup.nodeGroupName });
  }
}

function createNodeGroup(name: string, args: EksNodeGroupArgs, parent: pulumi.Resource) {
  const amiType = args.amiType ?? (args.gpuType !== undefined ? "AL2023_x86_64_NVIDIA" : "AL2023_x86_64_STANDARD");
  if (args.gpuType !== undefined && !(NVIDIA_AMI_TYPES as readonly string[]).includes(amiType)) {
    throw new Error(`${name}: a GPU node group needs an NVIDIA AMI type (${NVIDIA_AMI_TYPES.join(", ")}), not ${amiType}`);
  }
  if (args.minSize > args.maxSize) throw new Error(`${name}: minSize ${args.minSize} is above maxSize ${args.maxSize}`);

  const tagSpecification = (resourceType: string) => ({ resourceType, tags: { ...args.instanceTags, Name: name } });
  const launchTemplate = new aws.ec2.LaunchTemplate(
    name,
    {
      updateDefaultVersion: true,
      blockDeviceMappings: [
        {
          deviceName: "/dev/xvda",
          ebs: { volumeSize: args.diskSizeGiB ?? 50, volumeType: "gp3", encrypted: "true", deleteOnTermination: "true" },
        },
      ],
      // IMDSv2 only, one hop: pods reach AWS through IRSA, never through the node's role.
      metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
      tagSpecifications: [tagSpecification("instance"), tagSpecification("volume")],
    },
    { parent },
  );

  const nodeGroup = new aws.eks.NodeGroup(
    name,
    {
      clusterName: args.clusterName,
      nodeRoleArn: args.nodeRoleArn,
      subnetIds: args.subnetIds,
      instanceTypes: args.instanceTypes,
      amiType,
      capacityType: args.spot ? "SPOT" : "ON_DEMAND",
      scalingConfig: { minSize: args.minSize, maxSize: args.maxSize, desiredSize: args.minSize },
      launchTemplate: { id: launchTemplate.id, version: pulumi.interpolate`${launchTemplate.latestVersion}` },
      updateConfig: { maxUnavailable: 1 },
      ...(args.gpuType !== undefined && { labels: gpuNodeLabels(args.gpuType), taints: [GPU_TAINT_FOR_NODE_POOLS] }),
    },
    // The cluster autoscaler owns the desired size once the group exists.
    { parent, ignoreChanges: ["scalingConfig.desiredSize"] },
  );
  return { nodeGroup, launchTemplate };
}
