/**
 * The dispatcher's HTTP API (DESIGN.md "runtime"): the backend calls it instead
 * of subprocess.Popen. Routes validate with the shared request schema and hand
 * work to an executor; every failure answers in the one error shape.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { z } from "zod";
import { FRAMEWORKS } from "../../charts-ts/catalogue.ts";
import { EXECUTORS, type Executor, parseTrainingRequest, type TrainingRequest } from "../../charts-ts/request.ts";
import { ApiError, notFound } from "../api-error.ts";
import type { JobExecutor, JobPage } from "../executors/job-executor.ts";
import type { KubernetesExecutor } from "../executors/kubernetes-executor.ts";
import type { DispatcherMetrics } from "../live/metrics.ts";
import type { FeedEvent, FeedFilter, TransitionFeed } from "../live/transition-feed.ts";
import { type JobStatus, PHASES } from "../status/status-model.ts";
import { bearerTokenMatches } from "./auth.ts";
import { openApiDocument } from "./openapi.ts";

export interface Executors {
  readonly kubernetes?: KubernetesExecutor;
  readonly local?: JobExecutor;
}

export interface ServerProps {
  readonly apiToken: string;
  readonly bodyLimitBytes: number;
  readonly defaultExecutor: Executor;
  readonly executors: Executors;
  /** Live transitions of Kubernetes jobs, for the server-sent event routes. */
  readonly feed?: TransitionFeed;
  readonly metrics?: DispatcherMetrics;
  /** Seconds between SSE keep-alive comments. @default 15 */
  readonly heartbeatSeconds?: number;
  /** @default false */
  readonly logger?: boolean;
}

const flag = z.enum(["true", "false", "1", "0"]).transform((value) => value === "true" || value === "1");

const jobIdParams = z.object({ jobId: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER) });
const submitQuery = z.strictObject({ dryRun: flag.default(false) });
const listQuery = z.strictObject({
  projectId: z.coerce.number().int().positive().optional(),
  framework: z.enum(FRAMEWORKS).optional(),
  phase: z.enum(PHASES).optional(),
  executor: z.enum(EXECUTORS).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  pageToken: z.string().min(1).optional(),
});
const eventsQuery = z.strictObject({
  projectId: z.coerce.number().int().positive().optional(),
  framework: z.enum(FRAMEWORKS).optional(),
  phase: z.enum(PHASES).optional(),
});
const logsQuery = z.strictObject({
  tailLines: z.coerce.number().int().positive().optional(),
  attempt: z.coerce.number().int().positive().optional(),
  follow: flag.default(false),
});

type SubmissionResult = "created" | "existing" | "conflict" | "invalid" | "error";

function submissionFailure(error: unknown): SubmissionResult {
  const status = error instanceof ApiError ? error.statusCode : 500;
  return status === 409 ? "conflict" : status < 500 ? "invalid" : "error";
}

/** The framework label of a submission metric: only catalogue names, so a hostile body cannot add series. */
function frameworkOf(body: unknown): string {
  const framework = (body as { framework?: unknown } | null)?.framework;
  return FRAMEWORKS.find((known) => known === framework) ?? "unknown";
}

function parsedRequest(body: unknown): TrainingRequest {
  const parsed = parseTrainingRequest(body);
  if (parsed.ok) return parsed.request;
  const [first] = parsed.errors;
  const message = parsed.errors.map((error) => (error.field ? `${error.field}: ${error.message}` : error.message)).join("; ");
  throw new ApiError(400, "invalid_request", message, first?.field || undefined);
}

function validated<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.code === "unrecognized_keys" ? issue.keys[0] : issue?.path.join(".");
  throw new ApiError(
    400,
    "invalid_request",
    `${field ? `${field}: ` : ""}${issue?.code === "unrecognized_keys" ? "unknown parameter" : issue?.message}`,
    field,
  );
}

const FASTIFY_ERRORS: Readonly<Record<string, [number, ApiError["code"], string]>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: [400, "invalid_request", "the body is not valid JSON"],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, "invalid_request", "the body is empty; send a JSON training request"],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, "payload_too_large", "the body is larger than the dispatcher accepts"],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, "unsupported_media_type", "send the request as application/json"],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, "invalid_request", "the Content-Length does not match the body"],
};

export function buildServer(props: ServerProps): FastifyInstance {
  const app = Fastify({ logger: props.logger ?? false, bodyLimit: props.bodyLimitBytes });
  const available = [props.executors.kubernetes, props.executors.local].filter(
    (executor): executor is JobExecutor => executor !== undefined,
  );

  const executorFor = (kind: Executor, field: string): JobExecutor => {
    const executor = available.find((candidate) => candidate.kind === kind);
    if (!executor) throw new ApiError(400, "invalid_request", `the ${kind} executor is not configured on this dispatcher`, field);
    return executor;
  };

  const findJob = async (jobId: number): Promise<JobStatus> => {
    for (const executor of available) {
      const status = await executor.get(jobId);
      if (status) return status;
    }
    throw notFound(jobId);
  };

  const send = (reply: FastifyReply, error: ApiError) => reply.code(error.statusCode).send(error.toBody());

  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    if (error instanceof ApiError) return send(reply, error);
    const known = error.code ? FASTIFY_ERRORS[error.code] : undefined;
    if (known) return send(reply, new ApiError(...known));
    request.log.error({ err: error }, "unhandled error");
    return send(reply, new ApiError(500, "internal", "the dispatcher failed to handle this request"));
  });
  app.setNotFoundHandler((request, reply) =>
    send(reply, new ApiError(404, "not_found", `no route ${request.method} ${request.url.split("?")[0]}`)),
  );

  app.addHook("onRequest", async (request) => {
    if (request.url.startsWith("/v1/") && !bearerTokenMatches(request.headers.authorization, props.apiToken)) {
      throw new ApiError(401, "unauthorized", "send Authorization: Bearer <token>");
    }
  });

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_request, reply) => {
    const states = await Promise.all(available.map(async (executor) => [executor.kind, await executor.ready()] as const));
    const ready = states.every(([, ok]) => ok);
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not ready", executors: Object.fromEntries(states) });
  });
  app.get("/openapi.json", async () => openApiDocument());

  app.post("/v1/jobs", async (request, reply) => {
    const started = performance.now();
    // A dry run creates nothing, so it is not a submission; everything else is counted once.
    let result: SubmissionResult | "dry-run" = "error";
    try {
      const { dryRun } = validated(submitQuery, request.query);
      const trainingRequest = parsedRequest(request.body);
      const executor = executorFor(trainingRequest.executor ?? props.defaultExecutor, "executor");
      if (dryRun) {
        result = "dry-run";
        const kubernetes = props.executors.kubernetes;
        if (!kubernetes)
          throw new ApiError(400, "invalid_request", "a dry run needs the kubernetes executor, which is not configured", "dryRun");
        return reply.code(200).send(await kubernetes.dryRun(trainingRequest));
      }
      const submitted = await executor.submit(trainingRequest);
      result = submitted.created ? "created" : "existing";
      return reply
        .code(submitted.created ? 201 : 200)
        .header("location", `/v1/jobs/${trainingRequest.jobId}`)
        .send(submitted.status);
    } catch (error) {
      if (result !== "dry-run") result = submissionFailure(error);
      throw error;
    } finally {
      if (result !== "dry-run") props.metrics?.submission(frameworkOf(request.body), result, (performance.now() - started) / 1000);
    }
  });

  app.get("/metrics", async (_request, reply) => {
    if (!props.metrics) throw new ApiError(404, "not_found", "metrics are not enabled on this dispatcher");
    return reply.type(props.metrics.registry.contentType).send(await props.metrics.registry.metrics());
  });

  const stream = (request: FastifyRequest, reply: FastifyReply, filter: FeedFilter) => {
    const feed = props.feed;
    if (!feed) throw new ApiError(404, "not_found", "live events need the kubernetes executor, which is not configured");
    const lastEventId = request.headers["last-event-id"];
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    out.write(": connected\n\n");
    const write = (event: FeedEvent) => {
      const data = { jobId: event.jobId, sequence: event.sequence, ...event.transition };
      out.write(`id: ${event.id}\nevent: transition\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const unsubscribe = feed.subscribe(filter, typeof lastEventId === "string" ? lastEventId : undefined, write);
    const heartbeat = setInterval(() => out.write(": keep-alive\n\n"), (props.heartbeatSeconds ?? 15) * 1000);
    request.raw.on("close", () => {
      clearInterval(heartbeat);
      unsubscribe();
    });
  };

  app.get("/v1/events", async (request, reply) => {
    const query = validated(eventsQuery, request.query);
    stream(request, reply, query);
  });

  app.get("/v1/jobs/:jobId/events", async (request, reply) => {
    const { jobId } = validated(jobIdParams, request.params);
    await findJob(jobId);
    stream(request, reply, { jobId });
  });

  app.get("/v1/jobs", async (request) => {
    const query = validated(listQuery, request.query);
    // The page token names the executor it continues, so one listing can walk both.
    const [tokenExecutor, token] = query.pageToken?.includes(":")
      ? (query.pageToken.split(/:(.*)/s) as [string, string])
      : [undefined, undefined];
    if (query.pageToken !== undefined && !available.some((executor) => executor.kind === tokenExecutor)) {
      throw new ApiError(400, "invalid_request", "pageToken is not one this dispatcher issued", "pageToken");
    }
    const candidates = available.filter((executor) => query.executor === undefined || executor.kind === query.executor);
    const startAt = tokenExecutor === undefined ? 0 : candidates.findIndex((executor) => executor.kind === tokenExecutor);
    const jobs: JobStatus[] = [];
    for (let index = Math.max(startAt, 0); index < candidates.length; index += 1) {
      const executor = candidates[index] as JobExecutor;
      const page: JobPage = await executor.list({
        ...(query.projectId !== undefined && { projectId: query.projectId }),
        ...(query.framework !== undefined && { framework: query.framework }),
        ...(query.phase !== undefined && { phase: query.phase }),
        limit: query.limit - jobs.length,
        ...(index === startAt && token !== undefined && { pageToken: token }),
      });
      jobs.push(...page.jobs);
      if (page.nextPageToken !== undefined) return { jobs, nextPageToken: `${executor.kind}:${page.nextPageToken}` };
      const following = candidates[index + 1];
      if (jobs.length >= query.limit && following) return { jobs, nextPageToken: `${following.kind}:` };
    }
    return { jobs };
  });

  app.get("/v1/jobs/:jobId", async (request) => findJob(validated(jobIdParams, request.params).jobId));

  app.post("/v1/jobs/:jobId/stop", async (request) => {
    const { jobId } = validated(jobIdParams, request.params);
    for (const executor of available) {
      const status = await executor.stop(jobId);
      if (status) return status;
    }
    throw notFound(jobId);
  });

  app.get("/v1/jobs/:jobId/logs", async (request, reply) => {
    const { jobId } = validated(jobIdParams, request.params);
    const query = validated(logsQuery, request.query);
    for (const executor of available) {
      const result = await executor.logs(jobId, {
        follow: query.follow,
        ...(query.tailLines !== undefined && { tailLines: query.tailLines }),
        ...(query.attempt !== undefined && { attempt: query.attempt }),
      });
      switch (result.kind) {
        case "unknown-job":
          continue;
        case "no-such-attempt":
          throw new ApiError(
            404,
            "not_found",
            `job ${jobId} has ${result.attempts} attempt(s); there is no attempt ${query.attempt}`,
            "attempt",
          );
        case "no-output-yet":
          return reply
            .type("text/plain; charset=utf-8")
            .header("x-log-state", "no-output-yet")
            .header("x-job-phase", result.status.phase)
            .send("");
        case "pods-gone":
          // The attempt ran, its pod is gone (stopped, failed fast): say so, with how it ended.
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
    }
    throw notFound(jobId);
  });

  return app;
}
