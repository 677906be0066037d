/**
 * What the live-status parts tell an operator (a watch that broke and when it retries, a
 * job failed fast, a callback the backend refused), as JSON lines in the shape the HTTP
 * server's pino logger writes, so both read as one stream. Secrets never reach it.
 */
import { ApiException } from "@kubernetes/client-node";
import { apiServerMessage } from "./api-error.ts";

export type LogLevel = "info" | "warn" | "error";
export type Log = (level: LogLevel, message: string, fields?: Readonly<Record<string, unknown>>) => void;

const PINO_LEVEL: Readonly<Record<LogLevel, number>> = { info: 30, warn: 40, error: 50 };

export const jsonLinesLog: Log = (level, message, fields = {}) => {
  process.stdout.write(`${JSON.stringify({ level: PINO_LEVEL[level], time: Date.now(), ...fields, msg: message })}\n`);
};

export const noLog: Log = () => undefined;

/** An error's gist for a log line: the API server's status and message, not its whole response. */
export function errorFields(error: unknown): Record<string, unknown> {
  return { ...(error instanceof ApiException && { status: error.code }), error: apiServerMessage(error) };
}
