/**
 * The README's API reference, generated from the route table and the error codes so the two
 * cannot drift: `npm run docs:api` rewrites it, and a unit test fails when it is stale.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ERROR_CODES, ERROR_STATUS } from "../api-error.ts";
import { ExecutorRegistry } from "../executors/registry.ts";
import { MAX_HEADER_BYTES, MAX_JSON_DEPTH } from "./limits.ts";
import type { Route } from "./route-table.ts";
import { routeTable } from "./routes.ts";

export const README = join(import.meta.dirname, "..", "README.md");
export const BEGIN = "<!-- api:begin (generated from dispatcher/http/routes.ts by `npm run docs:api`; a test checks it) -->";
export const END = "<!-- api:end -->";

/** The table's routes, with no executor behind them: only their declarations are read. */
export function declaredRoutes(): readonly Route[] {
  return routeTable({ registry: new ExecutorRegistry([], "local"), heartbeatSeconds: 15 });
}

export function apiReference(routes: readonly Route[]): string {
  const rows = routes.map(
    (route) =>
      `| \`${route.method}\` | \`${route.path}\` | ${route.access === "open" ? "open" : "token"} | \`${route.operationId}\` | ${route.summary} |`,
  );
  const errors = ERROR_CODES.map((code) => `| ${ERROR_STATUS[code].status} | \`${code}\` | ${ERROR_STATUS[code].meaning} |`);
  return [
    BEGIN,
    "| method | path | access | operationId | what |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
    "",
    `Every other route, and any method a path does not list, answers 404 or 405. Limits: JSON bodies nested at most`,
    `${MAX_JSON_DEPTH} levels (400 beyond), request line and headers at most ${MAX_HEADER_BYTES} bytes (414 or 431).`,
    "",
    "| status | code | meaning |",
    "| --- | --- | --- |",
    ...errors,
    END,
  ].join("\n");
}

/** The README with its generated section replaced by `section`. */
export function withReference(readme: string, section: string): string {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start === -1 || end < start) throw new Error(`${README} has no ${BEGIN} ... ${END} section`);
  return readme.slice(0, start) + section + readme.slice(end + END.length);
}

if (process.argv[1] === import.meta.filename) {
  writeFileSync(README, withReference(readFileSync(README, "utf8"), apiReference(declaredRoutes())));
}
