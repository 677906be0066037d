import type {
  PolicyResource,
  ReportViolation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
} from "@pulumi/policy";
import { describe, expect, it, vi } from "vitest";
import { trainingRequest } from "../../charts-ts/request.ts";
import { PLAN_FULL_EXAMPLE } from "../../charts-ts/samples.ts";
import { renderTrainingJob } from "../../charts-ts/training-job-chart.ts";
import {
  gpuNodePoolsTainted,
  noPublicBuckets,
  noSecretsInConfigMaps,
  PLATFORM_POLICIES,
  s3BucketsBlockPublicAccess,
  trainingJobsNonRootWithGpuLimits,
} from "../../infra/policy/policies.ts";

// biome-ignore lint/suspicious/noExplicitAny: fake resource properties
type Props = Record<string, any>;

/** Calls the policy's validateResource on a fake resource; returns what it reported. */
function violations(policy: ResourceValidationPolicy, type: string, props: Props): string[] {
  const reportViolation = vi.fn<ReportViolation>();
  const args = { type, props, urn: `urn:pulumi:test::training-platform::${type}::r`, name: "r" } as unknown as ResourceValidationArgs;
  const validate = policy.validateResource;
  if (typeof validate !== "function") throw new Error(`${policy.name} has no single validateResource`);
  validate(args, reportViolation);
  return reportViolation.mock.calls.map(([message]) => message);
}

const GPU_TAINT = { key: "nvidia.com/gpu", value: "true", effect: "NO_SCHEDULE" };

it("every policy is mandatory and has a unique name", () => {
  expect(PLATFORM_POLICIES.every((policy) => policy.enforcementLevel === "mandatory")).toBe(true);
  expect(new Set(PLATFORM_POLICIES.map((policy) => policy.name)).size).toBe(PLATFORM_POLICIES.length);
});

describe(gpuNodePoolsTainted.name, () => {
  const nodeGroup = "aws:eks/nodeGroup:NodeGroup";
  const nodePool = "gcp:container/nodePool:NodePool";

  it("passes tainted GPU pools and untainted CPU pools", () => {
    expect(violations(gpuNodePoolsTainted, nodeGroup, { amiType: "AL2023_x86_64_NVIDIA", taints: [GPU_TAINT] })).toEqual([]);
    expect(violations(gpuNodePoolsTainted, nodeGroup, { amiType: "AL2023_x86_64_STANDARD" })).toEqual([]);
    expect(
      violations(gpuNodePoolsTainted, nodePool, {
        nodeConfig: { guestAccelerators: [{ type: "nvidia-l4", count: 1 }], taints: [GPU_TAINT] },
      }),
    ).toEqual([]);
    expect(violations(gpuNodePoolsTainted, nodePool, { nodeConfig: { machineType: "e2-standard-4" } })).toEqual([]);
  });

  it("reports GPU pools without the taint", () => {
    expect(violations(gpuNodePoolsTainted, nodeGroup, { amiType: "AL2023_x86_64_NVIDIA" })).toEqual([
      "EKS node group with GPU AMI AL2023_x86_64_NVIDIA has no nvidia.com/gpu NO_SCHEDULE taint.",
    ]);
    expect(
      violations(gpuNodePoolsTainted, nodeGroup, {
        amiType: "BOTTLEROCKET_x86_64_NVIDIA",
        taints: [{ ...GPU_TAINT, effect: "PREFER_NO_SCHEDULE" }],
      }),
    ).toHaveLength(1);
    expect(
      violations(gpuNodePoolsTainted, nodePool, { nodeConfig: { guestAccelerators: [{ type: "nvidia-tesla-t4", count: 1 }] } }),
    ).toEqual(["GKE node pool with nvidia-tesla-t4 has no nvidia.com/gpu NO_SCHEDULE taint."]);
  });
});

describe(trainingJobsNonRootWithGpuLimits.name, () => {
  const job = "kubernetes:batch/v1:Job";
  const rendered = renderTrainingJob(trainingRequest(PLAN_FULL_EXAMPLE)) as Props;
  const withPod = (edit: (pod: Props) => void): Props => {
    const copy = structuredClone(rendered);
    edit(copy.spec.template.spec);
    return copy;
  };

  it("passes the TrainingJob the platform renders", () => {
    expect(violations(trainingJobsNonRootWithGpuLimits, job, rendered)).toEqual([]);
  });

  it("ignores Jobs that are not training Jobs", () => {
    expect(
      violations(trainingJobsNonRootWithGpuLimits, job, { metadata: { name: "migrate", labels: { app: "backend" } }, spec: {} }),
    ).toEqual([]);
  });

  it("reports a trainer that may run as root", () => {
    const asRoot = withPod((pod) => {
      pod.securityContext.runAsUser = 0;
    });
    expect(violations(trainingJobsNonRootWithGpuLimits, job, asRoot)).toEqual([
      "Container trainer of training Job training-job-123 may run as root: set runAsNonRoot and a non-zero runAsUser.",
    ]);
    const unset = withPod((pod) => {
      delete pod.securityContext.runAsNonRoot;
    });
    expect(violations(trainingJobsNonRootWithGpuLimits, job, unset)).toHaveLength(1);
  });

  it("reports a GPU request without an equal limit, and a GPU node placement without any GPU limit", () => {
    const requestOnly = withPod((pod) => {
      delete pod.containers[0].resources.limits["nvidia.com/gpu"];
    });
    expect(violations(trainingJobsNonRootWithGpuLimits, job, requestOnly)).toEqual([
      "Container trainer requests 1 nvidia.com/gpu but limits none: extended resources need a limit equal to the request.",
      "Training Job training-job-123 tolerates GPU nodes but no container has a nvidia.com/gpu limit: it would hold a GPU node without using a GPU.",
    ]);
  });
});

describe(noPublicBuckets.name, () => {
  it("passes private buckets", () => {
    expect(violations(noPublicBuckets, "aws:s3/bucket:Bucket", { forceDestroy: false })).toEqual([]);
    const block = { blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true };
    expect(violations(noPublicBuckets, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", block)).toEqual([]);
    expect(
      violations(noPublicBuckets, "gcp:storage/bucket:Bucket", { publicAccessPrevention: "enforced", uniformBucketLevelAccess: true }),
    ).toEqual([]);
    expect(
      violations(noPublicBuckets, "gcp:storage/bucketIAMMember:BucketIAMMember", {
        role: "roles/storage.objectAdmin",
        member: "serviceAccount:mlflow@p.iam.gserviceaccount.com",
      }),
    ).toEqual([]);
  });

  it("reports public ACLs, open access blocks, and public GCS buckets and members", () => {
    expect(violations(noPublicBuckets, "aws:s3/bucketAclV2:BucketAclV2", { acl: "public-read" })).toEqual([
      "S3 ACL public-read makes the bucket public.",
    ]);
    expect(
      violations(noPublicBuckets, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", {
        blockPublicAcls: true,
        blockPublicPolicy: false,
      }),
    ).toEqual([
      "S3 public access block leaves blockPublicPolicy off.",
      "S3 public access block leaves ignorePublicAcls off.",
      "S3 public access block leaves restrictPublicBuckets off.",
    ]);
    expect(violations(noPublicBuckets, "gcp:storage/bucket:Bucket", { publicAccessPrevention: "inherited" })).toEqual([
      "GCS bucket does not enforce public access prevention.",
      "GCS bucket allows object ACLs: enable uniform bucket-level access.",
    ]);
    expect(
      violations(noPublicBuckets, "gcp:storage/bucketIAMBinding:BucketIAMBinding", {
        role: "roles/storage.objectViewer",
        members: ["allUsers"],
      }),
    ).toEqual(["GCS bucket IAM grants roles/storage.objectViewer to allUsers."]);
  });
});

describe(s3BucketsBlockPublicAccess.name, () => {
  const resource = (type: string, name: string, props: Props) => ({ type, name, props, urn: `urn:${name}` }) as unknown as PolicyResource;

  it("reports S3 buckets without a public access block", () => {
    const reportViolation = vi.fn<ReportViolation>();
    const args = {
      resources: [
        resource("aws:s3/bucket:Bucket", "covered", { id: "covered-123", bucket: "covered-123" }),
        resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "covered", { bucket: "covered-123" }),
        resource("aws:s3/bucket:Bucket", "open", { id: "open-456", bucket: "open-456" }),
      ],
    } as unknown as StackValidationArgs;
    s3BucketsBlockPublicAccess.validateStack(args, reportViolation);
    expect(reportViolation.mock.calls).toEqual([["S3 bucket open has no public access block.", "urn:open"]]);
  });
});

describe(noSecretsInConfigMaps.name, () => {
  const configMap = "kubernetes:core/v1:ConfigMap";
  const named = (data: Props) => ({ metadata: { name: "settings" }, data });

  it("passes configuration", () => {
    expect(
      violations(noSecretsInConfigMaps, configMap, named({ "api-url": "https://backend.example.com", "training-jobs.json": "{}" })),
    ).toEqual([]);
  });

  it("reports keys that name credentials and values that are credentials", () => {
    expect(violations(noSecretsInConfigMaps, configMap, named({ DB_PASSWORD: "x", "api-key": "y", token: "z" }))).toEqual([
      'ConfigMap settings key "DB_PASSWORD" names a credential: put it in a Secret.',
      'ConfigMap settings key "api-key" names a credential: put it in a Secret.',
      'ConfigMap settings key "token" names a credential: put it in a Secret.',
    ]);
    expect(
      violations(
        noSecretsInConfigMaps,
        configMap,
        named({
          aws: "AKIAABCDEFGHIJKLMNOP",
          database: "postgresql://mlflow:hunter2@db:5432/mlflow",
          cert: "-----BEGIN RSA PRIVATE KEY-----",
        }),
      ),
    ).toHaveLength(3);
  });
});
