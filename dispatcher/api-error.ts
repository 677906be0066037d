/** The one error shape every route answers with: {"error": {"code", "message", "field"?}}. */
import { ApiException } from "@kubernetes/client-node";
import { z } from "zod";

export const ERROR_CODES = [
  "invalid_request",
  "unauthorized",
  "not_found",
  "conflict",
  "payload_too_large",
  "unsupported_media_type",
  "kubernetes_unavailable",
  "internal",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const errorBodySchema = z.object({
  error: z.object({
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
