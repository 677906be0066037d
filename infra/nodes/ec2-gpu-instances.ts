/**
 * NVIDIA GPUs per EC2 instance, for the instance families GPU pools use (AWS's
 * accelerated-computing instance table). An EKS node group knows its instance type,
 * not its GPU count; the dispatcher needs the count to tell "busy" from "never fits".
 * A type not listed here needs `gpusPerNode` in its pool's config.
 */

const ONE_GPU_SIZES = ["xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge"];

/** g5, g6 and g6e: one GPU up to 16xlarge, then 4, 4 and 8. */
function gFamily(family: string): [string, number][] {
  return [
    ...ONE_GPU_SIZES.map((size): [string, number] => [`${family}.${size}`, 1]),
    [`${family}.12xlarge`, 4],
    [`${family}.24xlarge`, 4],
    [`${family}.48xlarge`, 8],
  ];
}

export const EC2_GPUS_PER_INSTANCE: Readonly<Record<string, number>> = Object.fromEntries([
  ...ONE_GPU_SIZES.map((size): [string, number] => [`g4dn.${size}`, 1]),
  ["g4dn.12xlarge", 4],
  ["g4dn.metal", 8],
  ...gFamily("g5"),
  ...gFamily("g6"),
  ...gFamily("g6e"),
  ["p3.2xlarge", 1],
  ["p3.8xlarge", 4],
  ["p3.16xlarge", 8],
  ["p3dn.24xlarge", 8],
  ["p4d.24xlarge", 8],
  ["p4de.24xlarge", 8],
  ["p5.48xlarge", 8],
  ["p5e.48xlarge", 8],
  ["p5en.48xlarge", 8],
]);
