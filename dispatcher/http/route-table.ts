/**
 * What a route is: the one declaration Fastify's routes, authentication, input validation,
 * the OpenAPI document and the README's API table are all derived from.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { z } from "zod";
import { ERROR_STATUS, type ErrorCode } from "../api-error.ts";

export type Access = "open" | "token";

export interface ResponseSpec {
  readonly description: string;
  /** The body, a named component (schemas.ts): for JSON the whole body, for an event stream each event's data. */
  readonly schema?: z.ZodType;
  /** @default "application/json" */
  readonly contentType?: string;
  /** Response headers: name to description. */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RouteInput<P, Q, B> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
}

type Schema = z.ZodType<unknown, unknown>;
type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteSpec<P extends Schema | undefined, Q extends Schema | undefined, B extends Schema | undefined> {
  readonly operationId: string;
  readonly method: "GET" | "POST";
  /** Fastify's syntax: `/v1/jobs/:jobId`. */
  readonly path: string;
  /** Only `open` routes answer without a token; everything else, matched or not, is `token`. */
  readonly access: Access;
  readonly summary: string;
  readonly description?: string;
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  /** Successful answers by status. */
  readonly responses: Readonly<Record<number, ResponseSpec>>;
  /** Error answers the handler itself gives, by code, with what they mean here. */
  readonly errors?: Readonly<Partial<Record<ErrorCode, string>>>;
  /** Called once the answer is sent, whatever it was (metrics). */
  readonly observe?: (request: FastifyRequest, reply: FastifyReply) => void;
  /** A stream (SSE, a followed log): exempt from the idle timeout, ended when the client goes. @default false */
  readonly streaming?: boolean;
  readonly handler: (input: RouteInput<Out<P>, Out<Q>, Out<B>>) => Promise<unknown>;
}

export type Route = RouteSpec<Schema | undefined, Schema | undefined, Schema | undefined>;

/** Declares a route with its handler typed from its schemas. */
export function route<
  P extends Schema | undefined = undefined,
  Q extends Schema | undefined = undefined,
  B extends Schema | undefined = undefined,
>(spec: RouteSpec<P, Q, B>): Route {
  return spec as unknown as Route;
}

/** `/v1/jobs/:jobId` as OpenAPI writes it: `/v1/jobs/{jobId}`. */
export function openApiPath(path: string): string {
  return path.replace(/:(\w+)/g, "{$1}");
}

/**
 * Every error a route can answer, with its meaning there: what its shape implies (a token,
 * input to validate, a body) and what the server or Node's HTTP parser may answer to any
 * request, plus the route's own.
 */
export function errorsOf(route: Route): ReadonlyMap<ErrorCode, string> {
  const meaning = (code: ErrorCode) => ERROR_STATUS[code].meaning;
  const implied: ErrorCode[] = [
    ...(route.params || route.query || route.body ? (["invalid_request"] as const) : []),
    ...(route.access === "token" ? (["unauthorized"] as const) : []),
    "request_timeout",
    ...(route.body ? (["payload_too_large", "unsupported_media_type"] as const) : []),
    "uri_too_long",
    "headers_too_large",
    "internal",
  ];
  const errors = new Map<ErrorCode, string>(implied.map((code) => [code, meaning(code)]));
  for (const [code, description] of Object.entries(route.errors ?? {}) as [ErrorCode, string][]) errors.set(code, description);
  return new Map([...errors].sort(([a], [b]) => ERROR_STATUS[a].status - ERROR_STATUS[b].status));
}
