/** The OpenAPI document, generated from the same zod schemas the routes validate with. */
import { z } from "zod";
import { trainingRequestSchema } from "../../charts-ts/request.ts";
import { errorBodySchema } from "../api-error.ts";
import { jobStatusSchema, PHASES } from "../status/status-model.ts";

const json = (schema: z.ZodType, io: "input" | "output" = "output") =>
  z.toJSONSchema(schema, { io, target: "openapi-3.0", unrepresentable: "any" });

const jobPageSchema = z.object({ jobs: z.array(jobStatusSchema), nextPageToken: z.string().optional() });

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});
const statusResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/JobStatus" } } },
});
const jobIdParameter = { name: "jobId", in: "path", required: true, schema: { type: "integer", minimum: 1 } };
const standardErrors = { "401": errorResponse("missing or wrong bearer token"), "503": errorResponse("the Kubernetes API is unavailable") };

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: "3.0.3",
    info: {
      title: "Training dispatcher",
      version: "1",
      description: "Submit, inspect, log and stop training jobs on Kubernetes or locally.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        TrainingRequest: json(trainingRequestSchema, "input"),
        JobStatus: json(jobStatusSchema),
        JobPage: json(jobPageSchema),
        Error: json(errorBodySchema),
      },
    },
    security: [{ bearer: [] }],
    paths: {
      "/v1/jobs": {
        post: {
          summary: "Submit a training job (idempotent on jobId)",
          parameters: [
            {
              name: "dryRun",
              in: "query",
              schema: { type: "boolean" },
              description: "return the manifest and the API server's verdict; create nothing",
            },
          ],
          requestBody: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/TrainingRequest" } } } },
          responses: {
            "201": statusResponse("created"),
            "200": statusResponse("an identical request had already created the job (or, with dryRun, the manifest and verdict)"),
            "400": errorResponse("invalid request; `field` names the first offending field"),
            "409": errorResponse("a different request already created this jobId"),
            "413": errorResponse("body larger than the limit"),
            ...standardErrors,
          },
        },
        get: {
          summary: "List training jobs",
          parameters: [
            { name: "projectId", in: "query", schema: { type: "integer" } },
            { name: "framework", in: "query", schema: { type: "string" } },
            { name: "phase", in: "query", schema: { type: "string", enum: [...PHASES] } },
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 500, default: 100 } },
            { name: "pageToken", in: "query", schema: { type: "string" } },
          ],
          responses: {
            "200": { description: "a page of jobs", content: { "application/json": { schema: { $ref: "#/components/schemas/JobPage" } } } },
            ...standardErrors,
          },
        },
      },
      "/v1/jobs/{jobId}": {
        get: {
          summary: "A job's status and transitions",
          parameters: [jobIdParameter],
          responses: { "200": statusResponse("status"), "404": errorResponse("no such job"), ...standardErrors },
        },
      },
      "/v1/jobs/{jobId}/stop": {
        post: {
          summary: "Stop a job gracefully; it stays queryable as `stopped`",
          parameters: [jobIdParameter],
          responses: {
            "200": statusResponse("stopping or stopped"),
            "404": errorResponse("no such job"),
            "409": errorResponse("already finished"),
            ...standardErrors,
          },
        },
      },
      "/v1/jobs/{jobId}/logs": {
        get: {
          summary: "The trainer's output",
          parameters: [
            jobIdParameter,
            { name: "tailLines", in: "query", schema: { type: "integer", minimum: 1 } },
            {
              name: "attempt",
              in: "query",
              schema: { type: "integer", minimum: 1 },
              description: "1-based attempt; the latest by default",
            },
            { name: "follow", in: "query", schema: { type: "boolean" } },
          ],
          responses: {
            "200": {
              description:
                "text; header x-log-state is `output`, `no-output-yet` or `pods-gone` (with x-log-attempt and, when known, x-log-exit-code)",
              content: { "text/plain": { schema: { type: "string" } } },
            },
            "404": errorResponse("no such job or attempt"),
            ...standardErrors,
          },
        },
      },
      "/healthz": { get: { summary: "Liveness", security: [], responses: { "200": { description: "alive" } } } },
      "/readyz": {
        get: {
          summary: "Readiness: the Kubernetes API answers",
          security: [],
          responses: { "200": { description: "ready" }, "503": { description: "not ready" } },
        },
      },
      "/openapi.json": { get: { summary: "This document", security: [], responses: { "200": { description: "OpenAPI 3.0" } } } },
    },
  };
}
