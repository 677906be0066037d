/**
 * The route table: every route the dispatcher answers, and nothing else. server.ts turns it
 * into Fastify routes and authentication, openapi.ts into the OpenAPI document.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { FRAMEWORKS } from "../../charts-ts/catalogue.ts";
import { trainingRequestSchema } from "../../charts-ts/request.ts";
import { ApiError } from "../api-error.ts";
import type { ExecutorRegistry } from "../executors/registry.ts";
import type { DispatcherMetrics } from "../live/metrics.ts";
import type { FeedEvent, FeedFilter, TransitionFeed } from "../live/transition-feed.ts";
import { jobStatusSchema } from "../status/status-model.ts";
import { openApiDocument } from "./openapi.ts";
import { type Route, route } from "./route-table.ts";
import {
  eventsQuery,
  healthSchema,
  jobIdParams,
  jobPageSchema,
  listQuery,
  logsQuery,
  readinessSchema,
  submitQuery,
  submitResponseSchema,
  type TransitionEvent,
  transitionEventSchema,
} from "./schemas.ts";

export interface RouteContext {
  readonly registry: ExecutorRegistry;
  /** Live transitions of Kubernetes jobs, for the server-sent event routes. */
  readonly feed?: TransitionFeed;
  readonly metrics?: DispatcherMetrics;
  /** Seconds between SSE keep-alive comments. */
  readonly heartbeatSeconds: number;
}

/** A submission's result label, from the status it was answered with. */
function submissionResult(status: number): string {
  if (status === 201) return "created";
  if (status === 200) return "existing";
  if (status === 409) return "conflict";
  if (status === 429) return "quota_exceeded";
  return status < 500 ? "invalid" : "error";
}

/** The framework label of a submission metric: only catalogue names, so a hostile body cannot add series. */
function frameworkOf(body: unknown): string {
  const framework = (body as { framework?: unknown } | null)?.framework;
  return FRAMEWORKS.find((known) => known === framework) ?? "unknown";
}

const LIST_LIMIT_DEFAULT = 100;
const SSE = "text/event-stream";
const TEXT = "text/plain";
const LOG_HEADERS = {
  "x-log-state":
    "`output`; `no-output-yet` for a known job that has printed nothing yet; `pods-gone` for an attempt whose pod is gone (stopped, failed fast)",
  "x-log-attempt": "the attempt whose output this is (with `output` and `pods-gone`)",
  "x-log-exit-code": "how the attempt ended, when known (with `pods-gone`)",
  "x-job-phase": "the job's phase (with `no-output-yet` and `pods-gone`)",
};
const noSuchJob = "no such job";

/** Server-sent events from the feed until the client goes; nothing here may throw once the response is ours. */
function stream(context: RouteContext, request: FastifyRequest, reply: FastifyReply, filter: FeedFilter): void {
  const feed = context.feed;
  if (!feed) throw new ApiError(404, "not_found", "live events need the kubernetes executor, which is not configured");
  const lastEventId = request.headers["last-event-id"];
  reply.hijack();
  const out = reply.raw;
  out.writeHead(200, { "content-type": SSE, "cache-control": "no-cache", connection: "keep-alive" });
  out.write(": connected\n\n");
  const write = (event: FeedEvent) => {
    const data: TransitionEvent = { jobId: event.jobId, sequence: event.sequence, ...event.transition };
    out.write(`id: ${event.id}\nevent: transition\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const unsubscribe = feed.subscribe(filter, typeof lastEventId === "string" ? lastEventId : undefined, write);
  const heartbeat = setInterval(() => out.write(": keep-alive\n\n"), context.heartbeatSeconds * 1000);
  const stop = () => {
    clearInterval(heartbeat);
    unsubscribe();
  };
  // The response closes when the client hangs up (or the socket fails); a write error follows the same path.
  out.on("close", stop);
  out.on("error", stop);
}

export function routeTable(context: RouteContext): readonly Route[] {
  const { registry, metrics } = context;
  let document: Record<string, unknown> | undefined;
  const routes: readonly Route[] = [
    route({
      operationId: "health",
      method: "GET",
      path: "/healthz",
      access: "open",
      summary: "Liveness",
      responses: { 200: { description: "the process serves requests", schema: healthSchema } },
      handler: async () => ({ status: "ok" }),
    }),
    route({
      operationId: "readiness",
      method: "GET",
      path: "/readyz",
      access: "open",
      summary: "Readiness: every configured executor can take work",
      responses: {
        200: { description: "ready", schema: readinessSchema },
        503: { description: "an executor cannot take work (each executor's state in the body)", schema: readinessSchema },
      },
      handler: async ({ reply }) => {
        const executors = await registry.readiness();
        const ready = Object.values(executors).every((state) => state.ready);
        return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not ready", executors });
      },
    }),
    route({
      operationId: "metrics",
      method: "GET",
      path: "/metrics",
      access: "open",
      summary: "Prometheus metrics (names in dispatcher/metric-names.ts)",
      responses: { 200: { description: "Prometheus text exposition format", contentType: TEXT } },
      errors: { not_found: "metrics are not enabled on this dispatcher" },
      handler: async ({ reply }) => {
        if (!metrics) throw new ApiError(404, "not_found", "metrics are not enabled on this dispatcher");
        return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
      },
    }),
    route({
      operationId: "submitJob",
      method: "POST",
      path: "/v1/jobs",
      access: "token",
      summary: "Submit a training job (idempotent on jobId)",
      query: submitQuery,
      body: trainingRequestSchema,
      responses: {
        201: { description: "created", schema: jobStatusSchema, headers: { location: "the job's URL" } },
        200: {
          description: "an identical request had already created the job; with dryRun, the manifest and the API server's verdict",
          schema: submitResponseSchema,
        },
      },
      errors: {
        conflict: "the jobId exists with a different request (the differing fields are named) or on another executor",
        quota_exceeded: "the training namespace's Job-count quota is full (the quota's own message); nothing was created",
        kubernetes_unavailable: "the Kubernetes API did not answer, or the training namespace does not exist (apply the platform chart)",
      },
      // Counted from the answer, so a body refused before the handler counts as `invalid` too.
      observe: (request, reply) => {
        if (reply.statusCode === 401 || submitQuery.safeParse(request.query).data?.dryRun) return;
        metrics?.submission(frameworkOf(request.body), submissionResult(reply.statusCode), reply.elapsedTime / 1000);
      },
      handler: async ({ query, body, reply }) => {
        if (query.dryRun) return reply.code(200).send(await registry.dryRun(body));
        const submitted = await registry.submit(body);
        return reply
          .code(submitted.created ? 201 : 200)
          .header("location", `/v1/jobs/${body.jobId}`)
          .send(submitted.status);
      },
    }),
    route({
      operationId: "listJobs",
      method: "GET",
      path: "/v1/jobs",
      access: "token",
      summary: "List training jobs across executors; pass nextPageToken as pageToken for the next page",
      query: listQuery,
      responses: {
        200: { description: "a page of jobs; unavailableExecutors names executors that could not answer", schema: jobPageSchema },
      },
      handler: async ({ query }) =>
        registry.list({
          ...(query.projectId !== undefined && { projectId: query.projectId }),
          ...(query.framework !== undefined && { framework: query.framework }),
          ...(query.phase !== undefined && { phase: query.phase }),
          ...(query.executor !== undefined && { executor: query.executor }),
          ...(query.pageToken !== undefined && { pageToken: query.pageToken }),
          limit: query.limit ?? LIST_LIMIT_DEFAULT,
        }),
    }),
    route({
      operationId: "getJob",
      method: "GET",
      path: "/v1/jobs/:jobId",
      access: "token",
      summary: "A job's status and transitions",
      params: jobIdParams,
      responses: { 200: { description: "status", schema: jobStatusSchema } },
      errors: { not_found: noSuchJob, kubernetes_unavailable: "the job is on no executor that answered, and the Kubernetes API did not" },
      handler: async ({ params }) => (await registry.find(params.jobId)).status,
    }),
    route({
      operationId: "stopJob",
      method: "POST",
      path: "/v1/jobs/:jobId/stop",
      access: "token",
      summary: "Stop a job gracefully; it stays queryable as `stopped`",
      params: jobIdParams,
      responses: { 200: { description: "stopping or stopped", schema: jobStatusSchema } },
      errors: { not_found: noSuchJob, conflict: "the job has already ended", kubernetes_unavailable: "the Kubernetes API did not answer" },
      handler: async ({ params }) => registry.stop(params.jobId),
    }),
    route({
      operationId: "getJobLogs",
      method: "GET",
      path: "/v1/jobs/:jobId/logs",
      access: "token",
      summary: "The trainer's output: the latest attempt, its last lines, a chosen attempt, or followed",
      params: jobIdParams,
      query: logsQuery,
      streaming: true,
      responses: {
        200: {
          description: "the log as text (empty with x-log-state no-output-yet or pods-gone)",
          contentType: TEXT,
          headers: LOG_HEADERS,
        },
      },
      errors: { not_found: "no such job or attempt (field `attempt`)", kubernetes_unavailable: "the Kubernetes API did not answer" },
      handler: async ({ params, query, reply }) => {
        const result = await registry.logs(params.jobId, {
          follow: query.follow ?? false,
          ...(query.tailLines !== undefined && { tailLines: query.tailLines }),
          ...(query.attempt !== undefined && { attempt: query.attempt }),
        });
        switch (result.kind) {
          case "no-such-attempt":
            throw new ApiError(
              404,
              "not_found",
              `job ${params.jobId} has ${result.attempts} attempt(s); there is no attempt ${query.attempt}`,
              "attempt",
            );
          case "no-output-yet":
            return reply
              .type("text/plain; charset=utf-8")
              .header("x-log-state", "no-output-yet")
              .header("x-job-phase", result.status.phase)
              .send("");
          case "pods-gone":
            // The attempt ran and its pod is gone: say so, with how it ended, instead of "no output yet".
            return reply
              .type("text/plain; charset=utf-8")
              .header("x-log-state", "pods-gone")
              .header("x-log-attempt", String(result.attempt))
              .header("x-job-phase", result.status.phase)
              .headers(result.exitCode === undefined ? {} : { "x-log-exit-code": String(result.exitCode) })
              .send("");
          case "output":
            return reply
              .type("text/plain; charset=utf-8")
              .header("x-log-state", "output")
              .header("x-log-attempt", String(result.attempt))
              .send(result.stream);
        }
      },
    }),
    route({
      operationId: "streamJobEvents",
      method: "GET",
      path: "/v1/jobs/:jobId/events",
      access: "token",
      summary: "Server-sent events: one job's transitions (id = its sequence; send Last-Event-ID to resume)",
      params: jobIdParams,
      streaming: true,
      responses: { 200: { description: "an event stream of `transition` events", contentType: SSE, schema: transitionEventSchema } },
      errors: {
        not_found: "no such job, a job of the local executor (live events follow Kubernetes jobs), or live events are off",
        kubernetes_unavailable: "the Kubernetes API did not answer",
      },
      handler: async ({ params, request, reply }) => {
        const { executor } = await registry.find(params.jobId);
        // The feed follows the cluster's Jobs: a local job's stream would stay silent forever.
        if (executor.kind !== "kubernetes") {
          throw new ApiError(
            404,
            "not_found",
            `job ${params.jobId} runs on the ${executor.kind} executor; live events follow Kubernetes jobs`,
          );
        }
        stream(context, request, reply, { jobId: params.jobId });
      },
    }),
    route({
      operationId: "streamEvents",
      method: "GET",
      path: "/v1/events",
      access: "token",
      summary: "Server-sent events: every job's transitions (id = `<at ms>-<jobId>-<sequence>`; send Last-Event-ID to resume)",
      query: eventsQuery,
      streaming: true,
      responses: { 200: { description: "an event stream of `transition` events", contentType: SSE, schema: transitionEventSchema } },
      errors: { not_found: "live events are off (no kubernetes executor)" },
      handler: async ({ query, request, reply }) => stream(context, request, reply, query),
    }),
    route({
      operationId: "openApiDocument",
      method: "GET",
      path: "/openapi.json",
      access: "open",
      summary: "This API's OpenAPI 3.1 document",
      responses: { 200: { description: "the OpenAPI 3.1 document", contentType: "application/json" } },
      handler: async () => {
        document ??= openApiDocument(routes);
        return document;
      },
    }),
  ];
  return routes;
}
