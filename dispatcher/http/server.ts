/**
 * The dispatcher's HTTP API (DESIGN.md "The front door"), derived from the route table
 * (routes.ts): each route's Fastify registration, its authentication (decided on the route
 * the router matched, deny by default), its input validation, and the OpenAPI document.
 * Every answer that is not a success, including those Node's HTTP parser and Fastify give
 * themselves, is in the one error shape (api-error.ts).
 */
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from "fastify";
import type { z } from "zod";
import type { Executor } from "../../charts-ts/request.ts";
import { fieldErrors } from "../../charts-ts/request.ts";
import { ApiError, ERROR_CODES, ERROR_STATUS } from "../api-error.ts";
import type { JobExecutor } from "../executors/job-executor.ts";
import type { KubernetesExecutor } from "../executors/kubernetes-executor.ts";
import { ExecutorRegistry } from "../executors/registry.ts";
import type { DispatcherMetrics } from "../live/metrics.ts";
import type { TransitionFeed } from "../live/transition-feed.ts";
import { bearerTokenMatches } from "./auth.ts";
import { MAX_HEADER_BYTES, MAX_JSON_DEPTH } from "./limits.ts";
import type { Access, Route } from "./route-table.ts";
import { routeTable } from "./routes.ts";

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
  /** Milliseconds a client has to send a whole request, headers and body; then 408 and the connection closes. @default 30000 */
  readonly requestTimeoutMs?: number;
  /** Milliseconds a connection may sit silent in mid-request or mid-response (streams excepted). @default 120000 */
  readonly idleTimeoutMs?: number;
  /** Milliseconds a kept-alive connection waits for its next request. @default 72000 */
  readonly keepAliveTimeoutMs?: number;
  /** Pino to stdout, or to the given stream. @default false */
  readonly logger?: boolean | { readonly stream: NodeJS.WritableStream };
}

const FASTIFY_ERRORS: Readonly<Record<string, [number, ApiError["code"], string]>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: [400, "invalid_request", "the body is not valid JSON"],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, "invalid_request", "the body is empty; send a JSON object"],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, "payload_too_large", "the body is larger than the dispatcher accepts"],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, "unsupported_media_type", "send the request as application/json"],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, "invalid_request", "the Content-Length does not match the body"],
  FST_ERR_BAD_URL: [400, "invalid_request", "the path is not a valid URL (a malformed %-escape)"],
  FST_ERR_MAX_PARAM_LENGTH: [414, "uri_too_long", "a path parameter is longer than the dispatcher takes"],
};

function send(reply: FastifyReply, error: ApiError) {
  return reply.code(error.statusCode).type("application/json; charset=utf-8").send(error.toBody());
}

/** A Fastify or parser error a client caused, in the one error shape; undefined for a fault of ours. */
function clientFault(error: FastifyError): ApiError | undefined {
  const known = error.code ? FASTIFY_ERRORS[error.code] : undefined;
  if (known) return new ApiError(...known);
  const status = error.statusCode ?? 500;
  if (status < 400 || status >= 500) return undefined;
  const code = ERROR_CODES.find((candidate) => ERROR_STATUS[candidate].status === status) ?? "invalid_request";
  return new ApiError(ERROR_STATUS[code].status, code, error.message);
}

function validated<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  if (what === "body" && (typeof value !== "object" || value === null || Array.isArray(value))) {
    throw new ApiError(400, "invalid_request", "the body must be a JSON object", "");
  }
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  const errors = fieldErrors(result.error);
  const message = errors.map((error) => (error.field ? `${error.field}: ${error.message}` : error.message)).join("; ");
  throw new ApiError(400, "invalid_request", message, errors[0]?.field || undefined);
}

/** Whether JSON text nests deeper than `max`, by a scan that cannot itself recurse. */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text.charCodeAt(index);
    if (inString) {
      if (char === 0x5c) index += 1;
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) inString = true;
    else if (char === 0x7b || char === 0x5b) {
      depth += 1;
      if (depth > max) return true;
    } else if (char === 0x7d || char === 0x5d) depth -= 1;
  }
  return false;
}

/** The request URL as logs show it: the path only, since a query string may carry a token. */
export function loggedUrl(url: string): string {
  const query = url.indexOf("?");
  return query === -1 ? url : `${url.slice(0, query)}?[redacted]`;
}

/**
 * Answers what Node's HTTP parser refused before any route saw it, in the one error shape.
 * Its header limit counts the request line too: a request line that alone overflows it is a 414.
 */
function clientError(error: Error & { readonly code?: string; readonly rawPacket?: unknown }, socket: Socket): void {
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  let answer: ApiError;
  if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    answer = new ApiError(408, "request_timeout", "the request did not arrive in time");
  } else if (error.code === "HPE_HEADER_OVERFLOW") {
    const head = Buffer.isBuffer(error.rawPacket) ? error.rawPacket.toString("latin1", 0, MAX_HEADER_BYTES + 2) : "";
    const lineEnd = head.indexOf("\r\n");
    answer =
      /^[A-Z]+ /.test(head) && (lineEnd === -1 || lineEnd >= MAX_HEADER_BYTES)
        ? new ApiError(414, "uri_too_long", `the request line is longer than ${MAX_HEADER_BYTES} bytes`)
        : new ApiError(431, "headers_too_large", `the request's headers are larger than ${MAX_HEADER_BYTES} bytes`);
  } else {
    answer = new ApiError(400, "invalid_request", `the request is not valid HTTP (${error.code ?? "parse error"})`);
  }
  const body = JSON.stringify(answer.toBody());
  socket.end(
    `HTTP/1.1 ${answer.statusCode} ${STATUS_CODES[answer.statusCode]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The methods the table serves at a concrete path, for a 405's Allow header. */
function allowedMethods(routes: readonly Route[], url: string): string[] {
  let path: string;
  try {
    path = decodeURI(new URL(url, "http://dispatcher").pathname);
  } catch {
    return [];
  }
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const matches = (pattern: string) => new RegExp(`^${pattern.split(/:\w+/).map(literal).join("[^/]+")}$`).test(path);
  return [...new Set(routes.filter((candidate) => matches(candidate.path)).map((candidate) => candidate.method))];
}

interface RouteConfig {
  readonly access?: Access;
}

const registered = new WeakMap<FastifyInstance, { readonly method: string; readonly url: string }[]>();

/** The routes Fastify registered (read from its onRoute hook), to hold the OpenAPI document against. */
export function registeredRoutes(app: FastifyInstance): readonly { readonly method: string; readonly url: string }[] {
  return registered.get(app) ?? [];
}

export function buildServer(props: ServerProps): FastifyInstance {
  const requestTimeout = props.requestTimeoutMs ?? 30_000;
  const logger: FastifyServerOptions["logger"] =
    props.logger === undefined || props.logger === false
      ? false
      : {
          level: "info",
          ...(typeof props.logger === "object" && { stream: props.logger.stream }),
          serializers: {
            req: (request: { method: string; url: string; host?: string; ip?: string }) => ({
              method: request.method,
              url: loggedUrl(request.url),
              host: request.host,
              remoteAddress: request.ip,
            }),
          },
        };
  const app = Fastify({
    logger,
    bodyLimit: props.bodyLimitBytes,
    // The table is the API: no implicit HEAD twins.
    exposeHeadRoutes: false,
    requestTimeout,
    connectionTimeout: props.idleTimeoutMs ?? 120_000,
    keepAliveTimeout: props.keepAliveTimeoutMs ?? 72_000,
    http: {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: requestTimeout,
      // Node enforces the request timeout only when it checks, every 30 s by default.
      connectionsCheckingInterval: Math.min(5_000, Math.max(100, requestTimeout / 4)),
    },
    clientErrorHandler: clientError,
    frameworkErrors: (error, _request, reply) => send(reply, clientFault(error) ?? new ApiError(400, "invalid_request", error.message)),
  });
  const registry = new ExecutorRegistry(
    [props.executors.kubernetes, props.executors.local].filter((executor): executor is JobExecutor => executor !== undefined),
    props.defaultExecutor,
  );
  const routes = routeTable({
    registry,
    ...(props.feed && { feed: props.feed }),
    ...(props.metrics && { metrics: props.metrics }),
    heartbeatSeconds: props.heartbeatSeconds ?? 15,
  });

  const seen: { method: string; url: string }[] = [];
  registered.set(app, seen);
  app.addHook("onRoute", (options) => {
    for (const method of [options.method].flat()) seen.push({ method, url: options.url });
  });

  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    if (error instanceof ApiError) return send(reply, error);
    const fault = clientFault(error);
    if (fault) return send(reply, fault);
    request.log.error({ err: error }, "unhandled error");
    return send(reply, new ApiError(500, "internal", "the dispatcher failed to handle this request"));
  });
  /** 405 with Allow where the path exists under other methods, else 404. */
  const unmatched = (request: FastifyRequest, reply: FastifyReply): ApiError => {
    const allowed = allowedMethods(routes, request.url);
    if (allowed.length === 0) return new ApiError(404, "not_found", `no route ${request.method} ${loggedUrl(request.url)}`);
    reply.header("allow", allowed.join(", "));
    return new ApiError(405, "method_not_allowed", `${request.method} is not allowed here; use ${allowed.join(" or ")}`);
  };
  app.setNotFoundHandler((request, reply) => send(reply, unmatched(request, reply)));

  // Decided on the route the router matched, never on the raw URL: what is not marked open
  // needs the token. A request that matched nothing runs no handler; it gets its 404 or 405.
  app.addHook("onRequest", async (request, reply) => {
    // Answered here, before Fastify would try to read a body for a method no route has.
    if (request.is404) throw unmatched(request, reply);
    if ((request.routeOptions.config as RouteConfig).access === "open") return;
    if (!bearerTokenMatches(request.headers.authorization, props.apiToken)) {
      throw new ApiError(401, "unauthorized", "send Authorization: Bearer <token>");
    }
  });

  // Only JSON bodies; bounded in size by bodyLimit and in depth here.
  app.removeAllContentTypeParsers();
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, raw, done) => {
    const body = String(raw);
    if (nestsDeeperThan(body, MAX_JSON_DEPTH)) {
      done(new ApiError(400, "invalid_request", `the body is JSON nested deeper than ${MAX_JSON_DEPTH} levels`), undefined);
      return;
    }
    parseJson(request, body, done);
  });

  for (const spec of routes) {
    app.route({
      method: spec.method,
      url: spec.path,
      config: { access: spec.access } satisfies RouteConfig,
      ...(spec.observe && { onResponse: async (request, reply) => spec.observe?.(request, reply) }),
      handler: async (request, reply) => {
        // A stream lives as long as its client; it ends when the client goes, not when it is quiet.
        // (inject()'s stand-in socket has no timeout to lift.)
        if (spec.streaming) request.raw.socket.setTimeout?.(0);
        return spec.handler({
          params: spec.params && validated(spec.params, request.params, "path"),
          query: spec.query && validated(spec.query, request.query, "query"),
          body: spec.body && validated(spec.body, request.body, "body"),
          request,
          reply,
        });
      },
    });
  }
  return app;
}
