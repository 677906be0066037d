/**
 * The API's schemas: path and query parameters as the routes validate them, and the
 * named bodies (components) the OpenAPI document refers to by name.
 */
import { z } from "zod";
import { FRAMEWORKS } from "../../charts-ts/catalogue.ts";
import { EXECUTORS, jsonValueSchema, trainingRequestSchema } from "../../charts-ts/request.ts";
import { errorBodySchema } from "../api-error.ts";
import { jobStatusSchema, PHASES, queueSchema, transitionSchema } from "../status/status-model.ts";

/** What the OpenAPI document says of a schema whose validation it cannot express (a string read as a number). */
export const documentedAs = new WeakMap<z.ZodType, Record<string, unknown>>();

/**
 * A whole number in a path or query string, in its one canonical spelling: decimal digits,
 * no sign, no leading zero, no exponent or fraction, so `0x7b`, `+123`, `123.0` and `1.23e2`
 * never reach the job `123` is.
 */
function canonicalInteger(name: string, min: number, max: number) {
  const schema = z
    .string()
    .regex(/^(?:0|[1-9][0-9]{0,15})$/, `${name} must be a decimal integer without sign, leading zeros or exponent`)
    .transform(Number)
    .refine((value) => value >= min && value <= max, `${name} must be between ${min} and ${max}`);
  documentedAs.set(schema, { type: "integer", minimum: min, maximum: max });
  return schema;
}

function flag(name: string) {
  const schema = z
    .enum(["true", "false", "1", "0"], { error: `${name} must be true or false` })
    .transform((value) => value === "true" || value === "1");
  documentedAs.set(schema, { type: "boolean" });
  return schema;
}

// Every JSON document is a JSON value: `{}` says so without the recursion client generators stumble on.
documentedAs.set(jsonValueSchema, { description: "any JSON value" });

export const jobIdParams = z.strictObject({ jobId: canonicalInteger("jobId", 1, Number.MAX_SAFE_INTEGER) });

export const submitQuery = z.strictObject({
  dryRun: flag("dryRun").optional().meta({ description: "return the manifest and the API server's verdict; create nothing" }),
});

export const listQuery = z.strictObject({
  projectId: canonicalInteger("projectId", 1, Number.MAX_SAFE_INTEGER).optional(),
  framework: z.enum(FRAMEWORKS).optional(),
  phase: z.enum(PHASES).optional(),
  executor: z.enum(EXECUTORS).optional().meta({ description: "only this executor's jobs" }),
  limit: canonicalInteger("limit", 1, 500).optional().meta({ description: "jobs per page (default 100)" }),
  pageToken: z.string().min(1).max(4096).optional().meta({ description: "a previous page's nextPageToken" }),
});

export const eventsQuery = z.strictObject({
  projectId: canonicalInteger("projectId", 1, Number.MAX_SAFE_INTEGER).optional(),
  framework: z.enum(FRAMEWORKS).optional(),
  phase: z.enum(PHASES).optional().meta({ description: "only transitions into this phase" }),
});

export const logsQuery = z.strictObject({
  tailLines: canonicalInteger("tailLines", 1, 1_000_000).optional(),
  attempt: canonicalInteger("attempt", 1, 1_000_000).optional().meta({ description: "1-based attempt; the latest by default" }),
  follow: flag("follow").optional().meta({ description: "stream until the attempt ends" }),
});

export const unavailableExecutorSchema = z.strictObject({ executor: z.enum(EXECUTORS), message: z.string() });

export const jobPageSchema = z.strictObject({
  jobs: z.array(jobStatusSchema),
  nextPageToken: z.string().optional(),
  /** Executors that could not answer; their jobs are missing from the page. */
  unavailableExecutors: z.array(unavailableExecutorSchema).optional(),
});

export const dryRunSchema = z.strictObject({
  manifest: z.record(z.string(), z.unknown()),
  verdict: z.strictObject({ accepted: z.boolean(), message: z.string().optional(), statusCode: z.number().int().optional() }),
});

/** The data of one server-sent `transition` event: the transition, its job and its place in the job's stream. */
export const transitionEventSchema = transitionSchema.extend({
  jobId: z.number().int().positive(),
  sequence: z.number().int().positive(),
});
export type TransitionEvent = z.output<typeof transitionEventSchema>;

/** 200 to a submission: the existing job's status, or with dryRun the manifest and verdict. */
export const submitResponseSchema = z.union([jobStatusSchema, dryRunSchema]);

export const healthSchema = z.strictObject({ status: z.literal("ok") });

export const readinessSchema = z.strictObject({
  status: z.enum(["ready", "not ready"]),
  // Not ready says why, in words that name the fix (`apply the platform chart: ...`).
  executors: z.partialRecord(
    z.enum(EXECUTORS),
    z.union([z.strictObject({ ready: z.literal(true) }), z.strictObject({ ready: z.literal(false), reason: z.string() })]),
  ),
});

/** Named schemas of the document, by id, and the side each travels on (generated for requests or responses). */
export const components = z.registry<{ readonly id: string }>();
export const componentSides = new Map<string, "input" | "output">();

function named(schema: z.ZodType, id: string, side: "input" | "output"): void {
  components.add(schema, { id });
  componentSides.set(id, side);
}

named(trainingRequestSchema, "TrainingRequest", "input");
// Each framework's request and its nested objects by name, so generated clients get one model each.
for (const variant of trainingRequestSchema.options) {
  const framework = variant.shape.framework.value;
  const prefix = `${framework.charAt(0).toUpperCase()}${framework.slice(1)}`;
  named(variant, `${prefix}TrainingRequest`, "input");
  named(variant.shape.dataset, `${prefix}Dataset`, "input");
  named(variant.shape.resources, `${prefix}Resources`, "input");
}
named(jsonValueSchema, "JsonValue", "input");
named(jobStatusSchema, "JobStatus", "output");
named(transitionSchema, "Transition", "output");
named(queueSchema, "Queue", "output");
named(transitionEventSchema, "TransitionEvent", "output");
named(jobPageSchema, "JobPage", "output");
named(unavailableExecutorSchema, "UnavailableExecutor", "output");
named(dryRunSchema, "DryRunResult", "output");
named(submitResponseSchema, "SubmitResponse", "output");
named(errorBodySchema, "Error", "output");
named(healthSchema, "Health", "output");
named(readinessSchema, "Readiness", "output");
