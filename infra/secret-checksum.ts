import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";

/**
 * Pod-template annotation whose value changes whenever a Secret the pods read
 * changes: Kubernetes does not restart pods for a changed Secret, a changed
 * template does (a rolling update).
 */
export const SECRET_CHECKSUM_ANNOTATION = "training-platform.io/secret-checksum";

/**
 * SHA-256 of the values a workload reads from its Secrets. Not itself a secret
 * (a digest of high-entropy values reveals none of them), so the workload's
 * diff stays readable in previews.
 */
export function secretChecksum(values: readonly pulumi.Input<string>[]): pulumi.Output<string> {
  return pulumi.unsecret(pulumi.all([...values]).apply((plain) => createHash("sha256").update(JSON.stringify(plain)).digest("hex")));
}
