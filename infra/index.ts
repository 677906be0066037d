/** Pulumi entry point (stacks/Pulumi.yaml): validate the stack's config, then declare the platform. */
import { loadStackConfig } from "./config/load-stack-config.ts";
import { platform } from "./program.ts";

export default platform(loadStackConfig());
