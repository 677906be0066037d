// CrossGuard entry point: `pulumi preview --policy-pack infra/policy`.
// CommonJS, not TypeScript, on purpose: Pulumi's policy runner always require()s a pack
// through ts-node, which rejects the `.ts` import paths this repo uses. import() goes to
// Node's own loader instead, which strips types as it does for every other .ts file here.
const { PolicyPack } = require("@pulumi/policy");

module.exports = async () => {
  const { PLATFORM_POLICIES } = await import("./policies.ts");
  new PolicyPack("training-platform", {
    description: "GPU pools tainted, training Jobs non-root with GPU limits, no public buckets, no credentials in ConfigMaps.",
    policies: PLATFORM_POLICIES,
  });
};
