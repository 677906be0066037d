import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface ServiceRoleArgs {
  /** The AWS service that assumes the role, e.g. "eks.amazonaws.com". */
  readonly service: string;
  readonly managedPolicyArns: readonly string[];
}

/** An IAM role an AWS service assumes, with AWS-managed policies attached. */
export function serviceRole(name: string, args: ServiceRoleArgs, opts: pulumi.CustomResourceOptions) {
  const role = new aws.iam.Role(
    name,
    {
      assumeRolePolicy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Principal: { Service: args.service }, Action: "sts:AssumeRole" }],
      }),
    },
    opts,
  );
  const attachments = args.managedPolicyArns.map(
    (policyArn) => new aws.iam.RolePolicyAttachment(`${name}-${policyArn.split("/").pop()}`, { role: role.name, policyArn }, opts),
  );
  return { role, attachments };
}

export interface IrsaRoleArgs {
  /** ARN of the cluster's IAM OIDC provider. */
  readonly oidcProviderArn: pulumi.Input<string>;
  /** The cluster's OIDC issuer URL. */
  readonly oidcIssuerUrl: pulumi.Input<string>;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Inline policy document (JSON) with what the workload may do. */
  readonly inlinePolicy?: pulumi.Input<string>;
  /** AWS-managed policies with what the workload may do. */
  readonly managedPolicyArns?: readonly string[];
}

/**
 * IAM Roles for Service Accounts: a role only pods running as one Kubernetes
 * ServiceAccount can assume, instead of static keys.
 */
export function irsaRole(name: string, args: IrsaRoleArgs, opts: pulumi.CustomResourceOptions): aws.iam.Role {
  const assumeRolePolicy = pulumi.all([args.oidcIssuerUrl, args.oidcProviderArn]).apply(([issuerUrl, providerArn]) => {
    const issuer = issuerUrl.replace(/^https:\/\//, "");
    return JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Federated: providerArn },
          Action: "sts:AssumeRoleWithWebIdentity",
          Condition: {
            StringEquals: {
              [`${issuer}:sub`]: `system:serviceaccount:${args.namespace}:${args.serviceAccount}`,
              [`${issuer}:aud`]: "sts.amazonaws.com",
            },
          },
        },
      ],
    });
  });
  const role = new aws.iam.Role(name, { assumeRolePolicy }, opts);
  if (args.inlinePolicy !== undefined) new aws.iam.RolePolicy(name, { role: role.id, policy: args.inlinePolicy }, opts);
  for (const policyArn of args.managedPolicyArns ?? []) {
    new aws.iam.RolePolicyAttachment(`${name}-${policyArn.split("/").pop()}`, { role: role.name, policyArn }, opts);
  }
  return role;
}

/** The ServiceAccount annotation that names the IRSA role its pods assume. */
export const IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn";
