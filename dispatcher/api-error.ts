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
  "quota_exceeded",
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
  quota_exceeded: {
    status: 429,
    meaning: "the namespace's quota (e.g. its Job count) is full; the message is the quota's; retry once jobs finish or are deleted",
  },
  payload_too_large: { status: 413, meaning: "the body is over `BODY_LIMIT_BYTES`; it is not read" },
  uri_too_long: { status: 414, meaning: "the request line or a path parameter is longer than the server takes" },
  unsupported_media_type: { status: 415, meaning: "a body that is not `application/json`" },
  headers_too_large: { status: 431, meaning: "the request's headers are larger than the server takes" },
  internal: { status: 500, meaning: "a fault of the dispatcher (logged); never caused by input" },
  kubernetes_unavailable: {
    status: 503,
    meaning: "the Kubernetes API did not answer, or the platform chart is not applied (the message names the fix); retry later",
  },
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

interface ApiServerStatus {
  readonly message?: unknown;
  readonly details?: { readonly kind?: unknown; readonly name?: unknown };
}

/** The Status object the API server answered a failed call with, when it did. */
function apiServerStatus(error: ApiException<unknown>): ApiServerStatus | undefined {
  try {
    const body = typeof error.body === "string" ? JSON.parse(error.body) : error.body;
    return body && typeof body === "object" ? (body as ApiServerStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** The API server's message from a failed call: its Status body when there is one. */
export function apiServerMessage(error: unknown): string {
  if (error instanceof ApiException) {
    const message = apiServerStatus(error)?.message;
    return typeof message === "string" ? message : `${error.code}: ${String(error.body ?? error.message)}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** What to do when the training namespace is missing: start-up, /readyz and every route say the same. */
export function missingNamespaceMessage(namespace: string): string {
  return `the namespace "${namespace}" does not exist: apply the platform chart: kubectl apply -f dist/platform.k8s.yaml (or deploy the stack, whose dispatcher component applies it)`;
}

/** Whether the API server refused a call because the namespace itself does not exist. */
export function isMissingNamespace(error: unknown, namespace: string): boolean {
  if (!(error instanceof ApiException) || error.code !== 404) return false;
  const details = apiServerStatus(error)?.details;
  return details?.kind === "namespaces" && details.name === namespace;
}

// The ResourceQuota admission plugin's words; its Status carries no other mark.
const EXCEEDED_QUOTA = /\bexceeded quota: /;

/**
 * An API server failure by what it means for the caller (dispatcher/README.md, "Errors"): a full
 * quota is a refusal to retry later (429), a request the API server calls bad is the caller's (400,
 * naming `field` when the call had one), a missing namespace is the platform not installed, and
 * everything else (no answer, 5xx, a permission the chart should have granted) is 503.
 */
export function apiServerFailure(error: unknown, namespace: string, field?: string): ApiError {
  const message = apiServerMessage(error);
  if (error instanceof ApiException) {
    if (error.code === 403 && EXCEEDED_QUOTA.test(message)) return new ApiError(429, "quota_exceeded", message);
    if (error.code === 400 || error.code === 422)
      return new ApiError(400, "invalid_request", field === undefined ? message : `${field}: ${message}`, field);
    if (isMissingNamespace(error, namespace)) return new ApiError(503, "kubernetes_unavailable", missingNamespaceMessage(namespace));
  }
  return new ApiError(503, "kubernetes_unavailable", `the Kubernetes API failed: ${message}`);
}
