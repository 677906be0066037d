/**
 * Runs a Pulumi program in-process against pulumi.runtime.setMocks and records
 * every resource it declares, with its inputs exactly as the engine receives
 * them (secrets still wrapped).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { validateStackConfig } from "../../infra/config/load-stack-config.ts";
import { type PlainStackConfig, SECRET_CONFIG, type SecretConfigKey } from "../../infra/config/stack-config.ts";

export const PROJECT = "training-platform";
export const STACKS_DIR = join(import.meta.dirname, "../../stacks");

// biome-ignore lint/suspicious/noExplicitAny: resource inputs are free-form
export type Inputs = Record<string, any>;

export interface DeclaredResource {
  readonly type: string;
  readonly name: string;
  readonly inputs: Inputs;
  /** `<provider urn>::<id>`, or "" for the default provider. */
  readonly provider: string;
  /** What it waits for (`dependsOn` and its inputs' resources), each as `<type> <name>`. */
  readonly dependencies: readonly string[];
  /** Its options' transforms, which mocks never run (nor create a component's children for them to act on). */
  readonly transforms: readonly pulumi.ResourceTransform[];
}

/** How the engine marks a secret value in resource inputs. */
const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export function isSecretValue(value: unknown): value is { value: unknown } {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG;
}

/** Removes the secret wrappers, for assertions on the values themselves. */
export function unwrapSecrets(value: unknown): unknown {
  if (isSecretValue(value)) return unwrapSecrets(value.value);
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (typeof value === "object" && value !== null)
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, unwrapSecrets(inner)]));
  return value;
}

/** Distinctive fake secrets, so a test can find any that leaks. */
export const TEST_SECRETS: Readonly<Record<SecretConfigKey, string>> = {
  r2Endpoint: "https://fake-account.r2.cloudflarestorage.example",
  r2AccessKey: "FAKEACCESSKEY0000001",
  r2SecretKey: "fake-secret-key-0123456789abcdef0123456789",
  dispatcherApiToken: "fake-dispatcher-api-token-0123456789abcdef0123",
  backendToken: "fake-backend-token-0123456789",
  mlflowDbPassword: "fakeMlflowDbPassword0123",
  grafanaAdminPassword: "fake-grafana-admin-password",
};

export interface StackConfigValues {
  /** Full keys (`training-platform:cloud`) -> value as Pulumi passes it to the program. */
  readonly values: Record<string, string>;
  readonly secretKeys: string[];
}

/** The stack files in stacks/, by stack name. */
export function stackFiles(): Map<string, string> {
  return new Map(
    readdirSync(STACKS_DIR)
      .filter((file) => /^Pulumi\.[^.]+\.yaml$/.test(file))
      .map((file) => [file.slice("Pulumi.".length, -".yaml".length), join(STACKS_DIR, file)]),
  );
}

/** Reads a stack file the way Pulumi hands it to a program: strings as they are, anything structured as JSON. */
export function readStackFile(path: string): StackConfigValues {
  const config: Record<string, unknown> = parse(readFileSync(path, "utf8")).config ?? {};
  const values: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (typeof value === "object" && value !== null && "secure" in value) {
      secretKeys.push(key);
      values[key] = "ciphertext placeholder";
    } else {
      values[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
  }
  return { values, secretKeys };
}

/** Adds every secret config key, set with --secret, to a stack's config. */
export function withTestSecrets(config: StackConfigValues, overrides: Partial<Record<SecretConfigKey, string>> = {}): StackConfigValues {
  const values = { ...TEST_SECRETS, ...overrides };
  const secrets = Object.fromEntries(Object.keys(SECRET_CONFIG).map((key) => [`${PROJECT}:${key}`, values[key as SecretConfigKey]]));
  return { values: { ...config.values, ...secrets }, secretKeys: [...config.secretKeys, ...Object.keys(secrets)] };
}

/** A build's images as the pulumi workflow sets them on a cloud stack before it deploys: the commit's tag, each image's digest. */
export const DEPLOYED_IMAGES = {
  dispatcherTag: "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
  trainerTag: "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
  dispatcherDigest: `sha256:${"5d".repeat(32)}`,
  trainerDigests: {
    ultralytics: `sha256:${"a1".repeat(32)}`,
    timm: `sha256:${"b2".repeat(32)}`,
    transformers: `sha256:${"c3".repeat(32)}`,
  },
} as const;

/** What `pulumi config set --path images.<key>` does for each DEPLOYED_IMAGES key, on cloud stacks (the workflow never deploys `local`). */
export function withDeployedImages(config: StackConfigValues): StackConfigValues {
  if (config.values[`${PROJECT}:cloud`] === "local") return config;
  const key = `${PROJECT}:images`;
  const images = { ...JSON.parse(config.values[key] ?? "{}"), ...DEPLOYED_IMAGES };
  return { ...config, values: { ...config.values, [key]: JSON.stringify(images) } };
}

/** A stack file as CI deploys it: its secrets set, and on a cloud stack the images of the commit. */
export function deployedStack(path: string, secretOverrides: Partial<Record<SecretConfigKey, string>> = {}): StackConfigValues {
  return withDeployedImages(withTestSecrets(readStackFile(path), secretOverrides));
}

/** A stack file's config as the program sees it after validation. */
export function validatedStackConfig(path: string): PlainStackConfig {
  const { values } = deployedStack(path);
  const unprefixed = Object.fromEntries(Object.entries(values).map(([key, value]) => [key.slice(`${PROJECT}:`.length), value]));
  const result = validateStackConfig(unprefixed, () => true);
  if (!result.success) throw new Error(result.problems.join("\n"));
  return result.config;
}

/** Outputs a real provider computes, which the program reads (endpoints, ARNs, addresses). */
function computedOutputs(type: string, name: string, inputs: Inputs): Inputs {
  switch (type) {
    case "aws:eks/cluster:Cluster":
      return {
        endpoint: "https://ABCDEF.gr7.us-east-1.eks.amazonaws.com",
        certificateAuthority: { data: "ZmFrZS1jYQ==" },
        identities: [{ oidcs: [{ issuer: "https://oidc.eks.us-east-1.amazonaws.com/id/ABCDEF" }] }],
        vpcConfig: { ...inputs.vpcConfig, vpcId: "vpc-0123456789abcdef0", clusterSecurityGroupId: "sg-0123456789abcdef0" },
      };
    case "aws:iam/role:Role":
      return { arn: `arn:aws:iam::123456789012:role/${name}`, name };
    case "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
      return { arn: "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABCDEF" };
    case "aws:ec2/launchTemplate:LaunchTemplate":
      return { latestVersion: 1 };
    case "aws:s3/bucket:Bucket":
      return { bucket: `${name}-0123abc`, arn: `arn:aws:s3:::${name}-0123abc` };
    case "aws:rds/instance:Instance":
      return { address: `${name}.abcdef.us-east-1.rds.amazonaws.com`, port: 5432 };
    case "gcp:container/cluster:Cluster":
      return { endpoint: "203.0.113.10", masterAuth: { clusterCaCertificate: "ZmFrZS1jYQ==" } };
    case "gcp:serviceaccount/account:Account":
      return {
        email: `${inputs.accountId}@${inputs.project}.iam.gserviceaccount.com`,
        name: `projects/${inputs.project}/serviceAccounts/${inputs.accountId}`,
      };
    case "gcp:sql/databaseInstance:DatabaseInstance":
      return { privateIpAddress: "10.20.0.3", name };
    case "gcp:storage/bucket:Bucket":
      return { name: `${name}-0123abc` };
    default:
      return {};
  }
}

/**
 * Sets the config, runs `program` against mocks, waits until every resource is
 * registered and returns them. Throws what the program throws.
 */
export async function declare(config: StackConfigValues, program: () => unknown, stack = "test"): Promise<DeclaredResource[]> {
  const declared: DeclaredResource[] = [];
  const dependencies = new Map<string, string[]>();
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        declared.push({
          type: args.type,
          name: args.name,
          inputs: args.inputs,
          provider: args.provider ?? "",
          dependencies: dependencies.get(`${args.type} ${args.name}`) ?? [],
          transforms: args.transforms ?? [],
        });
        return { id: `${args.name}-id`, state: { ...args.inputs, ...computedOutputs(args.type, args.name, args.inputs) } };
      },
      call: (args) => args.inputs,
    },
    PROJECT,
    stack,
    false,
  );
  recordDependencies(dependencies);
  pulumi.runtime.setAllConfig(config.values, config.secretKeys);
  program();
  await pulumi.runtime.disconnect();
  return declared;
}

interface RegisterResourceRequest {
  getType(): string;
  getName(): string;
  getDependenciesList(): string[];
}

/**
 * The mocks' newResource does not see a resource's dependencies; the mock monitor's
 * request does. Records them, by `<type> <name>`, before the mock is asked.
 */
function recordDependencies(into: Map<string, string[]>): void {
  const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource(req: RegisterResourceRequest, callback: unknown): unknown };
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, callback) => {
    into.set(`${req.getType()} ${req.getName()}`, req.getDependenciesList().map(describeUrn));
    return register(req, callback);
  };
}

/** `urn:pulumi:<stack>::<project>::<parent types>$<type>::<name>` as `<type> <name>`. */
function describeUrn(urn: string): string {
  const [, , types = "", ...name] = urn.split("::");
  return `${types.split("$").pop()} ${name.join("::")}`;
}
