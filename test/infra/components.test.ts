import { describe, expect, it } from "vitest";
import { cidrSubnet, EksNetwork } from "../../infra/cluster/eks/network.ts";
import { mlflowEndpoint, parseMlflowEndpoint } from "../../infra/mlflow/mlflow-endpoint.ts";
import { EksNodeGroup, type EksNodeGroupArgs } from "../../infra/nodes/eks-node-group.ts";
import { GkeNodePool } from "../../infra/nodes/gke-node-pool.ts";
import { declare } from "./pulumi-mocks.ts";

/** Runs `construct` under mocks and returns what it threw. */
async function thrownBy(construct: () => unknown): Promise<unknown> {
  let error: unknown;
  await declare({ values: {}, secretKeys: [] }, () => {
    try {
      construct();
    } catch (thrown) {
      error = thrown;
    }
  });
  return error;
}

describe("EksNetwork", () => {
  it("refuses a new VPC and existing subnets together", async () => {
    const error = await thrownBy(
      () =>
        new EksNetwork("network", {
          clusterName: "training",
          vpc: { cidrBlock: "10.0.0.0/16", availabilityZones: ["us-east-1a", "us-east-1b"] },
          subnetIds: { private: ["subnet-1", "subnet-2"] },
        }),
    );
    expect(error).toEqual(new Error("network: vpc and subnetIds are mutually exclusive: set one"));
  });

  it("refuses neither", async () => {
    expect(await thrownBy(() => new EksNetwork("network", { clusterName: "training" }))).toEqual(
      new Error("network: set vpc (a new VPC) or subnetIds (existing subnets)"),
    );
  });

  it("uses existing subnets as given", async () => {
    const resources = await declare({ values: {}, secretKeys: [] }, () => {
      new EksNetwork("network", { clusterName: "training", subnetIds: { private: ["subnet-1", "subnet-2"] } });
    });
    expect(resources.map((resource) => resource.type)).toEqual(["training-platform:cluster:EksNetwork"]);
  });
});

describe("cidrSubnet", () => {
  it.each([
    ["10.0.0.0/16", 19, 0, "10.0.0.0/19"],
    ["10.0.0.0/16", 19, 3, "10.0.96.0/19"],
    ["10.0.0.0/16", 22, 32, "10.0.128.0/22"],
    ["10.40.0.0/16", 22, 35, "10.40.140.0/22"],
  ])("%s /%i #%i is %s", (cidr, prefix, index, expected) => {
    expect(cidrSubnet(cidr, prefix, index)).toBe(expected);
  });

  it("refuses a subnet outside the block", () => {
    expect(() => cidrSubnet("10.0.0.0/16", 19, 8)).toThrow("does not fit");
  });
});

const nodeGroupArgs: EksNodeGroupArgs = {
  clusterName: "training",
  nodeRoleArn: "arn:aws:iam::123456789012:role/node",
  subnetIds: ["subnet-1"],
  instanceTypes: ["g5.xlarge"],
  minSize: 0,
  maxSize: 2,
  instanceTags: {},
};

describe("EksNodeGroup", () => {
  it("refuses a GPU group on an AMI without the NVIDIA driver", async () => {
    const error = await thrownBy(() => new EksNodeGroup("gpu", { ...nodeGroupArgs, gpuType: "a10g", amiType: "AL2023_x86_64_STANDARD" }));
    expect(String(error)).toContain("gpu: a GPU node group needs an NVIDIA AMI type");
  });

  it("refuses a minimum above the maximum", async () => {
    expect(String(await thrownBy(() => new EksNodeGroup("system", { ...nodeGroupArgs, minSize: 3 })))).toContain(
      "minSize 3 is above maxSize 2",
    );
  });

  it("defaults a GPU group to the NVIDIA AMI", async () => {
    const resources = await declare({ values: {}, secretKeys: [] }, () => new EksNodeGroup("gpu", { ...nodeGroupArgs, gpuType: "a10g" }));
    expect(resources.find((resource) => resource.type === "aws:eks/nodeGroup:NodeGroup")?.inputs.amiType).toBe("AL2023_x86_64_NVIDIA");
  });
});

describe("GkeNodePool", () => {
  it("refuses a minimum above the maximum", async () => {
    const error = await thrownBy(
      () =>
        new GkeNodePool("gpu", {
          cluster: "training",
          machineType: "g2-standard-8",
          minNodes: 2,
          maxNodes: 1,
          serviceAccount: "nodes@project.iam.gserviceaccount.com",
          labels: {},
        }),
    );
    expect(String(error)).toContain("minNodes 2 is above maxNodes 1");
  });
});

describe("mlflowEndpoint", () => {
  it("reads service, namespace and port from the in-cluster URL", () => {
    expect(mlflowEndpoint("http://mlflow-service.mlflow.svc.cluster.local:5000")).toEqual({
      serviceName: "mlflow-service",
      namespace: "mlflow",
      port: 5000,
    });
    expect(parseMlflowEndpoint("http://tracking.ml.svc:8080/")).toEqual({ serviceName: "tracking", namespace: "ml", port: 8080 });
  });

  it("refuses anything else", () => {
    expect(parseMlflowEndpoint("https://mlflow.example.com")).toBeUndefined();
    expect(() => mlflowEndpoint("http://mlflow-service:5000")).toThrow("is not http://<service>.<namespace>.svc.cluster.local:<port>");
  });
});
