/** The one error shape every route answers with: {"error": {"code", "message", "field"?}}. */
import { ApiException } from "@kubernetes/client-node";
import { z } from "zod";

export const ERROR_CODES = [
  "invalid_request",
  "unauthorized",
  "not_found",
  "method_not_allowed",
  "request_timeout",
  "conflict",
  "payload_too_large",
  "uri_too_long",
  "unsupported_media_type",
  "headers_too_large",
  "internal",
  "kubernetes_unavailable",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Each code's one HTTP status and what it means; the README's error table is generated from it. */
export const ERROR_STATUS: Readonly<Record<ErrorCode, { readonly status: number; readonly meaning: string }>> = {
  invalid_request: { status: 400, meaning: "the request is malformed or invalid; `field` names the first offending field" },
  unauthorized: { status: 401, meaning: "missing or wrong `Authorization: Bearer <token>`" },
  not_found: { status: 404, meaning: "no such job, attempt or route" },
  method_not_allowed: { status: 405, meaning: "the path exists, the method does not (header `Allow` lists the methods)" },
  request_timeout: { status: 408, meaning: "the request (headers and body) did not arrive within the request timeout" },
  conflict: { status: 409, meaning: "the jobId exists with a different request or on another executor, or the job has already ended" },
  payload_too_large: { status: 413, meaning: "the body is over `BODY_LIMIT_BYTES`; it is not read" },
  uri_too_long: { status: 414, meaning: "the request line or a path parameter is longer than the server takes" },
  unsupported_media_type: { status: 415, meaning: "a body that is not `application/json`" },
  headers_too_large: { status: 431, meaning: "the request's headers are larger than the server takes" },
  internal: { status: 500, meaning: "a fault of the dispatcher (logged); never caused by input" },
  kubernetes_unavailable: { status: 503, meaning: "the Kubernetes API did not answer; retry later" },
};

export const errorBodySchema = z.strictObject({
  error: z.strictObject({
    code: z.enum(ERROR_CODES),
    message: z.string(),
    field: z.string().optional(),
  }),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

export class ApiError extends Error {
  readonly statusCode: number;
  readonly code: ErrorCode;
  readonly field: string | undefined;

  constructor(statusCode: number, code: ErrorCode, message: string, field?: string) {
    super(message);
    this.name = "ApiError";
    this.statusCode = statusCode;
    this.code = code;
    this.field = field;
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.field !== undefined && { field: this.field }) } };
  }
}

export const notFound = (jobId: number) => new ApiError(404, "not_found", `no training job ${jobId}`);

/** The API server's message from a failed call: its Status body when there is one. */
export function apiServerMessage(error: unknown): string {
  if (error instanceof ApiException) {
    try {
      const body = typeof error.body === "string" ? JSON.parse(error.body) : error.body;
      if (body && typeof body.message === "string") return body.message;
    } catch {
      // Not a Status object: fall through to the exception's own text.
    }
    return `${error.code}: ${String(error.body ?? error.message)}`;
  }
  return error instanceof Error ? error.message : String(error);
}
