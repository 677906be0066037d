/**
 * The training request: what the backend sends to start a run. One zod schema
 * validates it at every edge (HTTP, cdk8s samples, tests), fills the plan's
 * defaults, and yields both the TypeScript types and the OpenAPI document.
 */
import { z } from "zod";
import { FRAMEWORK_CATALOGUE, FRAMEWORKS, type Framework, type FrameworkEntry } from "./catalogue.ts";
import { hasReservedLabelPrefix, RESERVED_LABEL_KEYS } from "./labels.ts";
import { parseQuantity } from "./quantity.ts";

export const MAX_ADVANCED_CONFIG_BYTES = 64 * 1024;
export const MAX_GPUS = 8;
export const MAX_RUNTIME_SECONDS = 7 * 24 * 3600;
export const MAX_COST_LABELS = 16;

export const PRIORITIES = ["high", "default", "low"] as const;
export type Priority = (typeof PRIORITIES)[number];

export const EXECUTORS = ["kubernetes", "local"] as const;
export type Executor = (typeof EXECUTORS)[number];

// Names travel as train.py arguments and into logs and paths: letters, digits and
// `. _ - /` only, never a leading dash (it would read as a flag), no `..` segment.
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._/-]*$/;
const hasParentSegment = (value: string) => value.split("/").includes("..");
// A checkpoint key is resolved by the trainer against its bucket: `.`, `..` and empty segments would
// let one job name another project's checkpoint (or read as a different key on another store).
const hasTraversalSegment = (key: string) => key.split("/").some((segment) => segment === "" || segment === "." || segment === "..");

const safeName = (what: string, maxLength: number) =>
  z
    .string({ error: `${what} must be a string` })
    .min(1, `${what} must not be empty`)
    .max(maxLength, `${what} must be at most ${maxLength} characters`)
    .regex(SAFE_NAME, `${what} may contain only letters, digits and . _ - / and must not start with - . or /`)
    .refine((value) => !hasParentSegment(value), `${what} must not contain a '..' segment`);

const positiveInt = (what: string, max: number) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be an integer`)
    .positive(`${what} must be positive`)
    .max(max, `${what} must be at most ${max}`);

const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const LABEL_NAME = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$/;

function isLabelKey(key: string): boolean {
  const slash = key.indexOf("/");
  if (slash === -1) return LABEL_NAME.test(key);
  return DNS_SUBDOMAIN.test(key.slice(0, slash)) && LABEL_NAME.test(key.slice(slash + 1));
}

const costLabels = z
  .record(
    z
      .string()
      .refine(isLabelKey, "label keys must be Kubernetes label keys ([prefix/]name, name up to 63 characters)")
      .refine((key) => !RESERVED_LABEL_KEYS.has(key), "this label key is reserved: set by the platform")
      .refine((key) => !hasReservedLabelPrefix(key), "this label key is reserved: its prefix belongs to Kubernetes or the platform"),
    z.string().regex(LABEL_VALUE, "label values must be up to 63 letters, digits, - _ . and start and end alphanumeric"),
  )
  .refine((labels) => Object.keys(labels).length <= MAX_COST_LABELS, `at most ${MAX_COST_LABELS} labels`)
  .default({});

const quantity = (what: string, example: string) =>
  z
    .union([z.number(), z.string()], { error: `${what} must be a Kubernetes quantity such as '${example}'` })
    .transform(String)
    .refine((value) => (parseQuantity(value) ?? 0) > 0, `${what} must be a positive Kubernetes quantity such as '${example}'`);

function resourcesSchema(defaults: FrameworkEntry["defaultResources"]) {
  return z
    .strictObject({
      gpu: z
        .number({ error: "gpu must be a number" })
        .int("gpu must be an integer")
        .min(0, "gpu must be at least 0")
        .max(MAX_GPUS, `gpu must be at most ${MAX_GPUS}`)
        .default(defaults.gpu),
      gpuType: z
        .string()
        .regex(/^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/, "gpuType must be a node label value such as 't4' or 'a100'")
        .optional(),
      cpu: quantity("cpu", "4").default(defaults.cpu),
      memory: quantity("memory", "16Gi").default(defaults.memory),
      cpuRequest: quantity("cpuRequest", "2").default(defaults.cpuRequest),
      memoryRequest: quantity("memoryRequest", "8Gi").default(defaults.memoryRequest),
    })
    .superRefine((resources, ctx) => {
      const above = (request: "cpuRequest" | "memoryRequest", limit: "cpu" | "memory") => {
        const requested = parseQuantity(resources[request]);
        const allowed = parseQuantity(resources[limit]);
        // A malformed quantity has its own error already; comparing it would only add noise.
        if (requested !== undefined && allowed !== undefined && requested > allowed) {
          ctx.addIssue({
            code: "custom",
            path: [request],
            message: `${request} ${resources[request]} is above the ${limit} limit ${resources[limit]}`,
          });
        }
      };
      above("cpuRequest", "cpu");
      above("memoryRequest", "memory");
      if (resources.gpu === 0 && resources.gpuType !== undefined) {
        ctx.addIssue({ code: "custom", path: ["gpuType"], message: "gpuType needs gpu of at least 1" });
      }
    })
    .prefault({});
}

const DURATION = /^(?:(?<h>\d+)h)?(?:(?<m>\d+)m)?(?:(?<s>\d+)s)?$/;

/** Seconds in a duration such as "24h", "1h30m" or "90s"; undefined when malformed. */
export function durationSeconds(duration: string): number | undefined {
  const groups = DURATION.exec(duration)?.groups;
  if (!groups || duration === "") return undefined;
  return Number(groups.h ?? 0) * 3600 + Number(groups.m ?? 0) * 60 + Number(groups.s ?? 0);
}

const maxRuntime = z
  .string()
  .refine(
    (value) => {
      const seconds = durationSeconds(value);
      return seconds !== undefined && seconds > 0 && seconds <= MAX_RUNTIME_SECONDS;
    },
    `maxRuntime must be a duration such as '24h' or '1h30m', above 0 and at most ${MAX_RUNTIME_SECONDS / 3600}h`,
  )
  .default("24h");

/** Any JSON value; one named schema so documents generated from the request can refer to its recursion. */
export const jsonValueSchema = z.json();

const advancedConfig = z
  .record(z.string(), jsonValueSchema, { error: "advancedConfig must be a JSON object" })
  .refine(
    (value) => Buffer.byteLength(JSON.stringify(value)) <= MAX_ADVANCED_CONFIG_BYTES,
    `advancedConfig must be at most ${MAX_ADVANCED_CONFIG_BYTES / 1024} KiB as JSON`,
  )
  .optional();

const CHECKPOINT_URI = /^(?:r2|s3|gs):\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/[A-Za-z0-9_][A-Za-z0-9._/-]*$/;
const checkpointKey = (uri: string) => uri.slice(uri.indexOf("/", uri.indexOf("://") + 3) + 1);

function requestSchemaFor<F extends Framework>(framework: F) {
  const entry: FrameworkEntry = FRAMEWORK_CATALOGUE[framework];
  return z.strictObject({
    jobId: positiveInt("jobId", Number.MAX_SAFE_INTEGER),
    projectId: positiveInt("projectId", Number.MAX_SAFE_INTEGER).optional(),
    framework: z.literal(framework),
    taskType: z.enum(entry.taskTypes, {
      error: `taskType must be one of ${entry.taskTypes.join(", ")} for ${framework}`,
    }),
    modelName: safeName("modelName", 128),
    dataset: z.strictObject({
      path: safeName("dataset.path", 512),
      format: z.enum(entry.datasetFormats, {
        error: `dataset.format must be one of ${entry.datasetFormats.join(", ")} for ${framework}`,
      }),
    }),
    numClasses: positiveInt("numClasses", 100_000).optional(),
    epochs: positiveInt("epochs", 100_000).default(50),
    batchSize: positiveInt("batchSize", 65_536).default(32),
    learningRate: z
      .number({ error: "learningRate must be a number" })
      .gt(0, "learningRate must be above 0")
      .max(1, "learningRate must be at most 1")
      .default(0.001),
    optimizer: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,31}$/, "optimizer must be a lower-case name such as 'adam' or 'sgd'")
      .default("adam"),
    imageSize: positiveInt("imageSize", 8192).optional(),
    pretrained: z.boolean({ error: "pretrained must be a boolean" }).default(true),
    advancedConfig,
    resources: resourcesSchema(entry.defaultResources),
    executor: z.enum(EXECUTORS, { error: `executor must be one of ${EXECUTORS.join(", ")}` }).optional(),
    priority: z.enum(PRIORITIES, { error: `priority must be one of ${PRIORITIES.join(", ")}` }).default("default"),
    maxRuntime,
    labels: costLabels,
    resumeFrom: z
      .string()
      .regex(CHECKPOINT_URI, "resumeFrom must be a checkpoint URI such as r2://bucket/checkpoints/.../last.pt")
      .refine((uri) => !hasTraversalSegment(checkpointKey(uri)), "resumeFrom must not contain a '..' segment, nor a '.' or an empty one")
      .optional(),
  });
}

type RequestSchemas = { [F in Framework]: ReturnType<typeof requestSchemaFor<F>> };

const schemas = Object.fromEntries(FRAMEWORKS.map((framework) => [framework, requestSchemaFor(framework)])) as RequestSchemas;

export const trainingRequestSchema = z.discriminatedUnion("framework", [schemas.ultralytics, schemas.timm, schemas.transformers], {
  error: `framework must be one of ${FRAMEWORKS.join(", ")}`,
});

/** A request as the backend may send it (defaults optional). */
export type TrainingRequestInput = z.input<typeof trainingRequestSchema>;
/** A validated request with every default filled in. */
export type TrainingRequest = z.output<typeof trainingRequestSchema>;

export interface FieldError {
  /** Dotted path of the offending field, e.g. `resources.cpuRequest`; empty for the whole body. */
  readonly field: string;
  readonly message: string;
}

export class InvalidTrainingRequestError extends Error {
  readonly errors: readonly FieldError[];
  constructor(errors: readonly FieldError[]) {
    super(errors.map((error) => (error.field ? `${error.field}: ${error.message}` : error.message)).join("; "));
    this.name = "InvalidTrainingRequestError";
    this.errors = errors;
  }
}

/** Each zod issue as the field it names and a message (`unknown field`, `is required`, or the schema's own). */
export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.flatMap((issue) => {
    const path = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ field: path ? `${path}.${key}` : key, message: "unknown field" }));
    }
    if (issue.code === "invalid_key") {
      return issue.issues.map((inner) => ({ field: path, message: inner.message }));
    }
    if (issue.code === "invalid_type" && issue.input === undefined) {
      return [{ field: path, message: "is required" }];
    }
    return [{ field: path, message: issue.message }];
  });
}

export type ParseResult =
  | { readonly ok: true; readonly request: TrainingRequest }
  | { readonly ok: false; readonly errors: readonly FieldError[] };

export function parseTrainingRequest(input: unknown): ParseResult {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { ok: false, errors: [{ field: "", message: "the request must be a JSON object" }] };
  }
  const result = trainingRequestSchema.safeParse(input, { reportInput: true });
  return result.success ? { ok: true, request: result.data } : { ok: false, errors: fieldErrors(result.error) };
}

/** Like parseTrainingRequest, for callers that treat a bad request as a bug (samples, tests). */
export function trainingRequest(input: TrainingRequestInput): TrainingRequest {
  const result = parseTrainingRequest(input);
  if (!result.ok) throw new InvalidTrainingRequestError(result.errors);
  return result.request;
}
