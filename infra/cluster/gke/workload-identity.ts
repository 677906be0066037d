import * as gcp from "@pulumi/gcp";
import type * as pulumi from "@pulumi/pulumi";

/** The ServiceAccount annotation that names the Google service account its pods act as. */
export const WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account";

export interface WorkloadIdentityArgs {
  readonly project: string;
  /** Shortened to GCP's 30 characters. */
  readonly accountId: string;
  /** The Kubernetes ServiceAccount that may act as the Google one. */
  readonly namespace: string;
  readonly serviceAccount: string;
}

/**
 * A Google service account that exactly one Kubernetes ServiceAccount may act
 * as (Workload Identity), so pods need no key files. Depend on the cluster: its
 * workload pool must exist before the binding.
 */
export function workloadIdentityServiceAccount(
  name: string,
  args: WorkloadIdentityArgs,
  opts: pulumi.CustomResourceOptions,
): gcp.serviceaccount.Account {
  const account = new gcp.serviceaccount.Account(
    name,
    {
      project: args.project,
      accountId: args.accountId.slice(0, 30).replace(/-+$/, ""),
      displayName: `Kubernetes ${args.namespace}/${args.serviceAccount}`,
    },
    opts,
  );
  new gcp.serviceaccount.IAMMember(
    name,
    {
      serviceAccountId: account.name,
      role: "roles/iam.workloadIdentityUser",
      member: `serviceAccount:${args.project}.svc.id.goog[${args.namespace}/${args.serviceAccount}]`,
    },
    opts,
  );
  return account;
}
