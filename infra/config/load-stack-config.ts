import * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import {
  dockerConfigRegistries,
  OPTIONAL_SECRET_CONFIG,
  type OptionalSecretConfigKey,
  type PlainStackConfig,
  registryHost,
  SECRET_CONFIG,
  type SecretConfigKey,
  stackConfigSchema,
} from "./stack-config.ts";

export type StackSecrets = { readonly [K in SecretConfigKey]: pulumi.Output<string> } & {
  readonly [K in OptionalSecretConfigKey]?: pulumi.Output<string>;
};

/** The validated stack configuration; secrets stay Pulumi secrets from config to resource. */
export type StackConfig = PlainStackConfig & { readonly secrets: StackSecrets };

export class StackConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid stack configuration:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`);
    this.name = "StackConfigError";
    this.problems = problems;
  }
}

// The SDK has no typed way to ask whether a config value was set with --secret; this is the one it uses itself.
const { isConfigSecret } = pulumi.runtime as unknown as { isConfigSecret(fullKey: string): boolean };

/**
 * Reads and validates this project's stack configuration. Throws a
 * StackConfigError naming every bad key before the program declares anything.
 */
export function loadStackConfig(): StackConfig {
  const namespace = pulumi.getProject();
  const prefix = `${namespace}:`;
  const values = Object.fromEntries(
    Object.entries(pulumi.runtime.allConfig())
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, value]) => [key.slice(prefix.length), value]),
  );
  const result = validateStackConfig(values, (key) => isConfigSecret(prefix + key));
  if (!result.success) throw new StackConfigError(result.problems.map((problem) => prefix + problem));
  const config = new pulumi.Config(namespace);
  const secrets = Object.fromEntries([
    ...Object.keys(SECRET_CONFIG).map((key) => [key, config.requireSecret(key)]),
    ...Object.keys(OPTIONAL_SECRET_CONFIG).flatMap((key) => {
      const value = config.getSecret(key);
      return value === undefined ? [] : [[key, value]];
    }),
  ]) as StackSecrets;
  return { ...result.config, secrets };
}

export type ValidationResult = { success: true; config: PlainStackConfig } | { success: false; problems: string[] };

/**
 * Validates raw config values (key without namespace -> value as Pulumi passes
 * it). Problems read `<key path>: <what is wrong>`; none quotes a value.
 */
export function validateStackConfig(values: Readonly<Record<string, string>>, isSecret: (key: string) => boolean): ValidationResult {
  const plain = Object.fromEntries(Object.entries(values).filter(([key]) => !(key in SECRET_CONFIG || key in OPTIONAL_SECRET_CONFIG)));
  const parsed = stackConfigSchema.safeParse(plain, { reportInput: true });
  const problems = [...(parsed.success ? [] : parsed.error.issues.flatMap(describeIssue)), ...secretProblems(values, isSecret)];
  if (parsed.success && problems.length === 0) problems.push(...pullSecretProblems(values.imagePullSecret, parsed.data.images.registry));
  if (parsed.success && problems.length === 0) return { success: true, config: parsed.data };
  return { success: false, problems };
}

/** Secret values are checked but never quoted: zod's messages here do not echo input. */
function secretProblems(values: Readonly<Record<string, string>>, isSecret: (key: string) => boolean): string[] {
  const secrets = [
    ...Object.entries(SECRET_CONFIG).map((entry) => [...entry, true] as const),
    ...Object.entries(OPTIONAL_SECRET_CONFIG).map((entry) => [...entry, false] as const),
  ];
  return secrets.flatMap(([key, { description, schema }, required]) => {
    const howToSet = `set it with \`pulumi config set --secret ${key} <value>\``;
    const value = values[key];
    if (value === undefined) return required ? [`${key}: required, the ${description}; ${howToSet}`] : [];
    if (!isSecret(key)) return [`${key}: stored in plain text; ${howToSet}`];
    const parsed = schema.safeParse(value);
    return parsed.success ? [] : parsed.error.issues.map((issue) => `${key}: ${issue.message}`);
  });
}

/** A pull secret that cannot log in to the stack's registry would fail every pull, on every node, at run time. */
function pullSecretProblems(pullSecret: string | undefined, registry: string): string[] {
  if (pullSecret === undefined) return [];
  const host = registryHost(registry);
  return dockerConfigRegistries(pullSecret)?.includes(host)
    ? []
    : [`imagePullSecret: holds no credentials for ${host}, the registry of images.registry`];
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === "unrecognized_keys") return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown key`);
  const message =
    issue.code === "invalid_type" && issue.input === undefined
      ? "required"
      : issue.code === "invalid_key"
        ? issue.issues.map((keyIssue) => keyIssue.message).join("; ")
        : issue.message;
  return [`${formatPath(issue.path)}: ${message}`];
}

/** `gpuPools[0].instanceType`. */
function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((segment, index) => (typeof segment === "number" ? `[${segment}]` : index === 0 ? String(segment) : `.${String(segment)}`))
    .join("");
}
