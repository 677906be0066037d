import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface NewVpcArgs {
  /** A /16; private subnets get a /19 each (pod IPs come from them), public subnets a /22. */
  readonly cidrBlock: string;
  /** 2 to 4 zones; pick ones that offer your GPU instance types. */
  readonly availabilityZones: readonly string[];
}

export interface ExistingSubnetsArgs {
  /** Where nodes (and the database) run; subnets in at least two zones with a route to a NAT. */
  readonly private: readonly pulumi.Input<string>[];
  /**
   * For internet-facing load balancers.
   * @default []
   */
  readonly public?: readonly pulumi.Input<string>[];
}

export interface EksNetworkArgs {
  /** Tags subnets so the cluster's load balancer controllers find them. */
  readonly clusterName: string;
  /** A new VPC. Mutually exclusive with `subnetIds`. */
  readonly vpc?: NewVpcArgs;
  /** Existing subnets. Mutually exclusive with `vpc`. */
  readonly subnetIds?: ExistingSubnetsArgs;
}

/** The subnets an EKS cluster runs in: a new VPC, or subnets that already exist. */
export class EksNetwork extends pulumi.ComponentResource {
  readonly privateSubnetIds: pulumi.Output<string[]>;
  readonly publicSubnetIds: pulumi.Output<string[]>;

  constructor(name: string, args: EksNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("training-platform:cluster:EksNetwork", name, {}, opts);
    const subnets = eksSubnets(name, args, this);
    this.privateSubnetIds = pulumi.output(subnets.privateSubnetIds);
    this.publicSubnetIds = pulumi.output(subnets.publicSubnetIds);
    this.registerOutputs({ privateSubnetIds: this.privateSubnetIds, publicSubnetIds: this.publicSubnetIds });
  }
}

function eksSubnets(name: string, { clusterName, vpc, subnetIds }: EksNetworkArgs, parent: pulumi.Resource) {
  if (vpc && subnetIds) throw new Error(`${name}: vpc and subnetIds are mutually exclusive: set one`);
  if (vpc) return createVpc(name, vpc, clusterName, parent);
  if (subnetIds) return { privateSubnetIds: [...subnetIds.private], publicSubnetIds: [...(subnetIds.public ?? [])] };
  throw new Error(`${name}: set vpc (a new VPC) or subnetIds (existing subnets)`);
}

function createVpc(name: string, args: NewVpcArgs, clusterName: string, parent: pulumi.Resource) {
  const opts = { parent };
  const clusterTag = { [`kubernetes.io/cluster/${clusterName}`]: "shared" };
  const vpc = new aws.ec2.Vpc(
    name,
    { cidrBlock: args.cidrBlock, enableDnsHostnames: true, enableDnsSupport: true, tags: { Name: name } },
    opts,
  );
  const internetGateway = new aws.ec2.InternetGateway(name, { vpcId: vpc.id, tags: { Name: name } }, opts);

  const publicRoutes = new aws.ec2.RouteTable(
    `${name}-public`,
    {
      vpcId: vpc.id,
      routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: internetGateway.id }],
      tags: { Name: `${name}-public` },
    },
    opts,
  );
  const publicSubnets = args.availabilityZones.map((zone, index) => {
    const subnet = new aws.ec2.Subnet(
      `${name}-public-${zone}`,
      {
        vpcId: vpc.id,
        availabilityZone: zone,
        cidrBlock: cidrSubnet(args.cidrBlock, 22, 32 + index),
        mapPublicIpOnLaunch: true,
        tags: { Name: `${name}-public-${zone}`, "kubernetes.io/role/elb": "1", ...clusterTag },
      },
      opts,
    );
    new aws.ec2.RouteTableAssociation(`${name}-public-${zone}`, { subnetId: subnet.id, routeTableId: publicRoutes.id }, opts);
    return subnet;
  });

  // One NAT gateway, not one per zone: a zone outage stalls egress for a while, at a third of the hourly cost.
  const natAddress = new aws.ec2.Eip(`${name}-nat`, { domain: "vpc", tags: { Name: `${name}-nat` } }, opts);
  const natGateway = new aws.ec2.NatGateway(
    name,
    {
      allocationId: natAddress.id,
      subnetId: (publicSubnets[0] as aws.ec2.Subnet).id,
      tags: { Name: name },
    },
    { ...opts, dependsOn: [internetGateway] },
  );
  const privateRoutes = new aws.ec2.RouteTable(
    `${name}-private`,
    {
      vpcId: vpc.id,
      routes: [{ cidrBlock: "0.0.0.0/0", natGatewayId: natGateway.id }],
      tags: { Name: `${name}-private` },
    },
    opts,
  );
  const privateSubnets = args.availabilityZones.map((zone, index) => {
    const subnet = new aws.ec2.Subnet(
      `${name}-private-${zone}`,
      {
        vpcId: vpc.id,
        availabilityZone: zone,
        cidrBlock: cidrSubnet(args.cidrBlock, 19, index),
        tags: { Name: `${name}-private-${zone}`, "kubernetes.io/role/internal-elb": "1", ...clusterTag },
      },
      opts,
    );
    new aws.ec2.RouteTableAssociation(`${name}-private-${zone}`, { subnetId: subnet.id, routeTableId: privateRoutes.id }, opts);
    return subnet;
  });
  return { privateSubnetIds: privateSubnets.map((subnet) => subnet.id), publicSubnetIds: publicSubnets.map((subnet) => subnet.id) };
}

/** The `index`th subnet of size /`prefixLength` inside `cidr` (Terraform's cidrsubnet). */
export function cidrSubnet(cidr: string, prefixLength: number, index: number): string {
  const [address, bits] = cidr.split("/") as [string, string];
  const base = address.split(".").reduce((value, octet) => value * 256 + Number(octet), 0);
  const size = 2 ** (32 - prefixLength);
  if (prefixLength < Number(bits) || (index + 1) * size > 2 ** (32 - Number(bits))) {
    throw new Error(`subnet ${index} of size /${prefixLength} does not fit in ${cidr}`);
  }
  const start = base + index * size;
  return `${[24, 16, 8, 0].map((shift) => Math.floor(start / 2 ** shift) % 256).join(".")}/${prefixLength}`;
}
