/**
 * The platform's rules as CrossGuard policies: every `pulumi preview`/`up` run
 * with `--policy-pack infra/policy` checks them, whoever wrote the resources.
 */
import type { ReportViolation, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { LABEL, TRAINING_JOB_APP } from "../../charts-ts/labels.ts";
import { GPU_RESOURCE } from "../../charts-ts/training-job.ts";
import { GPU_TAINT } from "../gpu-nodes.ts";

// biome-ignore lint/suspicious/noExplicitAny: policy props are free-form resource inputs
type Props = Record<string, any>;

/** What the node pool APIs call the NoSchedule effect. */
const NO_SCHEDULE = new Set(["NO_SCHEDULE", "NoSchedule"]);

function hasGpuTaint(taints: readonly Props[] | undefined): boolean {
  return (taints ?? []).some((taint) => taint.key === GPU_TAINT.key && NO_SCHEDULE.has(taint.effect));
}

export const gpuNodePoolsTainted: ResourceValidationPolicy = {
  name: "gpu-node-pools-tainted",
  description: `GPU node pools carry the ${GPU_TAINT.key} NoSchedule taint, so only pods that request GPUs land on, and keep paying for, GPU nodes.`,
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, reportViolation: ReportViolation) => {
    const { props } = args;
    if (args.type === "aws:eks/nodeGroup:NodeGroup") {
      const gpuAmi = /NVIDIA|GPU/.test(String(props.amiType ?? ""));
      if (gpuAmi && !hasGpuTaint(props.taints))
        reportViolation(`EKS node group with GPU AMI ${props.amiType} has no ${GPU_TAINT.key} NO_SCHEDULE taint.`);
    }
    if (args.type === "gcp:container/nodePool:NodePool") {
      const accelerators: readonly Props[] = props.nodeConfig?.guestAccelerators ?? [];
      if (accelerators.length > 0 && !hasGpuTaint(props.nodeConfig?.taints)) {
        reportViolation(
          `GKE node pool with ${accelerators.map((accelerator) => accelerator.type).join(", ")} has no ${GPU_TAINT.key} NO_SCHEDULE taint.`,
        );
      }
    }
  },
};

/** runAsNonRoot set and runAsUser not 0, on the pod or else on the container. */
function runsAsNonRoot(pod: Props | undefined, container: Props | undefined): boolean {
  const nonRoot = container?.runAsNonRoot ?? pod?.runAsNonRoot;
  const user = container?.runAsUser ?? pod?.runAsUser;
  return nonRoot === true && user !== 0;
}

export const trainingJobsNonRootWithGpuLimits: ResourceValidationPolicy = {
  name: "training-jobs-non-root-with-gpu-limits",
  description: `Training Jobs (label ${LABEL.app}=${TRAINING_JOB_APP}) run as non-root, and a Job placed on GPU nodes sets a ${GPU_RESOURCE} limit on its containers.`,
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, reportViolation: ReportViolation) => {
    if (args.type !== "kubernetes:batch/v1:Job" || args.props.metadata?.labels?.[LABEL.app] !== TRAINING_JOB_APP) return;
    const pod: Props = args.props.spec?.template?.spec ?? {};
    const containers: readonly Props[] = pod.containers ?? [];
    for (const container of containers) {
      if (!runsAsNonRoot(pod.securityContext, container.securityContext)) {
        reportViolation(
          `Container ${container.name} of training Job ${args.props.metadata?.name} may run as root: set runAsNonRoot and a non-zero runAsUser.`,
        );
      }
      const requested = container.resources?.requests?.[GPU_RESOURCE];
      const limit = container.resources?.limits?.[GPU_RESOURCE];
      if (requested !== undefined && String(requested) !== String(limit)) {
        reportViolation(
          `Container ${container.name} requests ${requested} ${GPU_RESOURCE} but limits ${limit ?? "none"}: extended resources need a limit equal to the request.`,
        );
      }
    }
    const onGpuNodes = (pod.tolerations ?? []).some((toleration: Props) => toleration.key === GPU_TAINT.key);
    if (onGpuNodes && !containers.some((container) => container.resources?.limits?.[GPU_RESOURCE] !== undefined)) {
      reportViolation(
        `Training Job ${args.props.metadata?.name} tolerates GPU nodes but no container has a ${GPU_RESOURCE} limit: it would hold a GPU node without using a GPU.`,
      );
    }
  },
};

const PUBLIC_ACLS = new Set(["public-read", "public-read-write", "authenticated-read"]);
const PUBLIC_MEMBERS = new Set(["allUsers", "allAuthenticatedUsers"]);
const PUBLIC_ACCESS_BLOCK_FLAGS = ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"] as const;

export const noPublicBuckets: ResourceValidationPolicy = {
  name: "no-public-buckets",
  description:
    "Buckets (S3, GCS) are never public: no public ACL or IAM member, every S3 public access block flag on, GCS public access prevention enforced.",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, reportViolation: ReportViolation) => {
    const { props } = args;
    switch (args.type) {
      case "aws:s3/bucket:Bucket":
      case "aws:s3/bucketAcl:BucketAcl":
      case "aws:s3/bucketAclV2:BucketAclV2":
        if (PUBLIC_ACLS.has(props.acl)) reportViolation(`S3 ACL ${props.acl} makes the bucket public.`);
        return;
      case "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        for (const flag of PUBLIC_ACCESS_BLOCK_FLAGS) {
          if (props[flag] !== true) reportViolation(`S3 public access block leaves ${flag} off.`);
        }
        return;
      case "gcp:storage/bucket:Bucket":
        if (props.publicAccessPrevention !== "enforced") reportViolation("GCS bucket does not enforce public access prevention.");
        if (props.uniformBucketLevelAccess !== true) reportViolation("GCS bucket allows object ACLs: enable uniform bucket-level access.");
        return;
      case "gcp:storage/bucketIAMMember:BucketIAMMember":
      case "gcp:storage/bucketIAMBinding:BucketIAMBinding": {
        const members: readonly string[] = props.members ?? [props.member];
        const open = members.filter((member) => PUBLIC_MEMBERS.has(member));
        if (open.length > 0) reportViolation(`GCS bucket IAM grants ${props.role} to ${open.join(", ")}.`);
        return;
      }
    }
  },
};

export const s3BucketsBlockPublicAccess: StackValidationPolicy = {
  name: "s3-buckets-block-public-access",
  description: "Every S3 bucket has a public access block, so no later policy or ACL can open it.",
  enforcementLevel: "mandatory",
  validateStack: (args, reportViolation) => {
    const blocked = new Set(
      args.resources
        .filter((resource) => resource.type === "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        .map((resource) => resource.props.bucket),
    );
    for (const bucket of args.resources.filter((resource) => resource.type === "aws:s3/bucket:Bucket")) {
      if (!blocked.has(bucket.props.id) && !blocked.has(bucket.props.bucket)) {
        reportViolation(`S3 bucket ${bucket.name} has no public access block.`, bucket.urn);
      }
    }
  },
};

/** Key names that say "this is a credential". */
const SECRET_KEY_NAME = /password|passwd|secret|credential|private[-_]?key|access[-_]?key|api[-_]?key|(^|[-_.])token($|[-_.])/i;
/** Values that are credentials whatever their key: AWS key ids, PEM private keys, GitHub tokens, URLs with a password. */
const SECRET_VALUES = [
  /\b(AKIA|ASIA)[0-9A-Z]{16}\b/,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  /\bgh[pousr]_[A-Za-z0-9]{36}\b/,
  /:\/\/[^/\s:@]+:[^/\s@]+@/,
];

export const noSecretsInConfigMaps: ResourceValidationPolicy = {
  name: "no-secret-values-in-configmaps",
  description:
    "ConfigMaps hold no credentials: they are readable by anyone who may read the namespace's configuration and are not encrypted at rest. Use a Secret.",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, reportViolation: ReportViolation) => {
    if (args.type !== "kubernetes:core/v1:ConfigMap") return;
    const entries: [string, unknown][] = [...Object.entries(args.props.data ?? {}), ...Object.entries(args.props.binaryData ?? {})];
    for (const [key, value] of entries) {
      if (SECRET_KEY_NAME.test(key))
        reportViolation(`ConfigMap ${args.props.metadata?.name} key "${key}" names a credential: put it in a Secret.`);
      else if (SECRET_VALUES.some((pattern) => pattern.test(String(value)))) {
        reportViolation(`ConfigMap ${args.props.metadata?.name} key "${key}" holds what looks like a credential: put it in a Secret.`);
      }
    }
  },
};

export const PLATFORM_POLICIES = [
  gpuNodePoolsTainted,
  trainingJobsNonRootWithGpuLimits,
  noPublicBuckets,
  s3BucketsBlockPublicAccess,
  noSecretsInConfigMaps,
];
