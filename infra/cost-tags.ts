import * as pulumi from "@pulumi/pulumi";

/**
 * Tags (AWS) or labels (GCP) that attribute spend to this platform and stack.
 * Keys and values follow GCP's label rules, the stricter of the two clouds.
 */
export function costTags(extra: Readonly<Record<string, string>>): Record<string, string> {
  return { project: pulumi.getProject(), stack: pulumi.getStack(), "managed-by": "pulumi", ...extra };
}
