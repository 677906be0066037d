// The OpenAPI document against what the server really registered and against a real OpenAPI 3.1
// validator; the README's API section against the route table; deny by default over every route.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalExecutor } from "../../dispatcher/executors/local-executor.ts";
import { apiReference, BEGIN, declaredRoutes, END, README } from "../../dispatcher/http/api-docs.ts";
import { openApiPath } from "../../dispatcher/http/route-table.ts";
import { buildServer, registeredRoutes } from "../../dispatcher/http/server.ts";

const token = "openapi-test-token";
let app: ReturnType<typeof buildServer>;
// biome-ignore lint/suspicious/noExplicitAny: the document is plain JSON, walked freely
let document: any;

beforeAll(async () => {
  const workDir = mkdtempSync(join(tmpdir(), "openapi-"));
  const local = await LocalExecutor.open({ trainerDir: workDir, python: "false", workDir, graceSeconds: 1, environment: {} });
  app = buildServer({ apiToken: token, bodyLimitBytes: 16 * 1024, defaultExecutor: "local", executors: { local } });
  await app.ready();
  document = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
});
afterAll(() => app.close());

const operations = (doc: { paths: Record<string, Record<string, unknown>> }) =>
  Object.entries(doc.paths)
    .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();

/** Every `$ref` in the document, with where it was found. */
function refs(value: unknown, at = "#"): [string, string][] {
  if (Array.isArray(value)) return value.flatMap((item, index) => refs(item, `${at}/${index}`));
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([key, inner]) =>
    key === "$ref" && typeof inner === "string" ? [[at, inner] as [string, string]] : refs(inner, `${at}/${key}`),
  );
}

function resolve(pointer: string): unknown {
  if (!pointer.startsWith("#/")) return undefined;
  return pointer
    .slice(2)
    .split("/")
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"))
    .reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], document);
}

describe("the OpenAPI document", () => {
  it("has exactly the operations the server registered", () => {
    const served = registeredRoutes(app)
      .map(({ method, url }) => `${method} ${openApiPath(url)}`)
      .sort();
    expect(served.length).toBeGreaterThan(0);
    expect(operations(document)).toEqual(served);
  });

  it("is a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(structuredClone(document));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toMatch(/^3\.1\./);
  });

  it("resolves every $ref", () => {
    const found = refs(document);
    expect(found.length).toBeGreaterThan(10);
    for (const [at, ref] of found) expect(resolve(ref), `${ref} at ${at}`).toBeDefined();
  });

  it("names its schemas and operations for generated clients", () => {
    expect(Object.keys(document.components.schemas)).toEqual(
      expect.arrayContaining(["TrainingRequest", "JobStatus", "Transition", "JobPage", "Error"]),
    );
    const ids = Object.values(document.paths).flatMap((methods) =>
      Object.values(methods as Record<string, { operationId: string }>).map((operation) => operation.operationId),
    );
    expect(ids.every((id) => /^[a-z][A-Za-z]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("documents the streams, /metrics, the executor filter and every status a route can answer", () => {
    const paths = document.paths;
    expect(paths["/v1/events"].get.responses["200"].content).toHaveProperty("text/event-stream");
    expect(paths["/v1/jobs/{jobId}/events"].get.responses["200"].content).toHaveProperty("text/event-stream");
    // Each event's data is a TransitionEvent, as JSON (OpenAPI 3.1: the stream's schema describes one event).
    expect(paths["/v1/events"].get.responses["200"].content["text/event-stream"].schema.properties.data).toEqual({
      type: "string",
      contentMediaType: "application/json",
      contentSchema: { $ref: "#/components/schemas/TransitionEvent" },
    });
    expect(paths["/metrics"].get.responses["200"].content).toHaveProperty("text/plain");
    expect(paths["/v1/jobs"].get.parameters.map((parameter: { name: string }) => parameter.name)).toContain("executor");
    expect(Object.keys(paths["/v1/jobs"].post.responses).sort()).toEqual(
      ["200", "201", "400", "401", "408", "409", "413", "414", "415", "429", "431", "500", "503"].sort(),
    );
    expect(Object.keys(paths["/v1/jobs/{jobId}"].get.responses)).toEqual(expect.arrayContaining(["400", "401", "404", "503"]));
  });

  it("describes jobId as the canonical integer the routes accept", () => {
    const [jobId] = document.paths["/v1/jobs/{jobId}"].get.parameters;
    expect(jobId).toEqual({
      name: "jobId",
      in: "path",
      required: true,
      schema: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    });
  });
});

describe("deny by default", () => {
  it("answers 401 without a token on every route the table does not mark open, and serves the open ones", async () => {
    const open = declaredRoutes()
      .filter((route) => route.access === "open")
      .map((route) => route.path);
    expect(open.sort()).toEqual(["/healthz", "/metrics", "/openapi.json", "/readyz"]);
    for (const { method, url } of registeredRoutes(app)) {
      const response = await app.inject({ method: method as "GET", url: url.replace(":jobId", "1") });
      if (open.includes(url)) expect(response.statusCode, `${method} ${url}`).not.toBe(401);
      else expect(response.statusCode, `${method} ${url}`).toBe(401);
    }
  });
});

describe("the README's API section", () => {
  it("is the one generated from the route table (npm run docs:api)", () => {
    const readme = readFileSync(README, "utf8");
    const section = readme.slice(readme.indexOf(BEGIN), readme.indexOf(END) + END.length);
    expect(section).toBe(apiReference(declaredRoutes()));
  });
});
