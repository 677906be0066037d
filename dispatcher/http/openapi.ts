/**
 * The OpenAPI 3.1 document, derived from the route table and its zod schemas: a route that
 * exists is documented, with every status it can answer; nothing is written by hand.
 */
import { z } from "zod";
import { ERROR_STATUS, type ErrorCode } from "../api-error.ts";
import { MAX_JSON_DEPTH } from "./limits.ts";
import { errorsOf, openApiPath, type ResponseSpec, type Route } from "./route-table.ts";
import { componentSides, components, documentedAs, jobIdParams } from "./schemas.ts";

const SCHEMAS = "#/components/schemas/";
type JsonSchema = Record<string, unknown>;

function jsonSchemaOptions(io: "input" | "output") {
  return {
    io,
    target: "draft-2020-12" as const,
    unrepresentable: "any" as const,
    uri: (id: string) => `${SCHEMAS}${id}`,
    override: ({ zodSchema, jsonSchema }: { zodSchema: unknown; jsonSchema: JsonSchema }) => {
      const documented = documentedAs.get(zodSchema as z.ZodType);
      if (!documented) return;
      for (const key of Object.keys(jsonSchema)) if (key !== "description") delete jsonSchema[key];
      Object.assign(jsonSchema, documented);
    },
  };
}

/** The named schemas, each generated for the side (request or response) it travels on. */
function componentSchemas(): Record<string, JsonSchema> {
  const sides = {
    input: z.toJSONSchema(components, jsonSchemaOptions("input")).schemas,
    output: z.toJSONSchema(components, jsonSchemaOptions("output")).schemas,
  };
  return Object.fromEntries(
    [...componentSides].map(([id, side]) => {
      const { $schema: _dialect, $id: _id, ...schema } = sides[side][id] as JsonSchema;
      return [id, schema];
    }),
  );
}

function reference(schema: z.ZodType | undefined, where: string): JsonSchema | undefined {
  if (schema === undefined) return undefined;
  const id = components.get(schema)?.id;
  if (id === undefined) throw new Error(`${where}: a JSON body must be a named component (dispatcher/http/schemas.ts)`);
  return { $ref: `${SCHEMAS}${id}` };
}

function parameters(route: Route): JsonSchema[] {
  const inPlace = (schema: z.ZodType | undefined, place: "path" | "query") => {
    if (!schema) return [];
    const object = z.toJSONSchema(schema, jsonSchemaOptions("input")) as { properties?: Record<string, JsonSchema>; required?: string[] };
    return Object.entries(object.properties ?? {}).map(([name, property]) => {
      const { description, ...rest } = property;
      return {
        name,
        in: place,
        required: place === "path" || (object.required ?? []).includes(name),
        ...(description !== undefined && { description }),
        schema: rest,
      };
    });
  };
  return [...inPlace(route.params, "path"), ...inPlace(route.query, "query")];
}

/**
 * OpenAPI links from an answer that names a job (its body has `jobId`) to every operation taking
 * a jobId, so clients and the fuzzer's stateful phase can follow a created job through the API.
 */
function jobLinks(spec: ResponseSpec, routes: readonly Route[], schemas: Record<string, JsonSchema>): JsonSchema | undefined {
  const named = spec.schema && components.get(spec.schema)?.id;
  const schema = named ? (schemas[named] as { properties?: Record<string, unknown> }) : undefined;
  if (!schema?.properties?.jobId) return undefined;
  const targets = routes.filter((route) => route.params === jobIdParams);
  return Object.fromEntries(
    targets.map((target) => [target.operationId, { operationId: target.operationId, parameters: { jobId: "$response.body#/jobId" } }]),
  );
}

function success(route: Route, spec: ResponseSpec, routes: readonly Route[], schemas: Record<string, JsonSchema>): JsonSchema {
  const contentType = spec.contentType ?? "application/json";
  const links = jobLinks(spec, routes, schemas);
  const where = `${route.method} ${route.path}`;
  const schema =
    contentType === "application/json"
      ? (reference(spec.schema, where) ?? { type: "object" })
      : contentType === "text/event-stream" && spec.schema
        ? // OpenAPI 3.1 has `schema` of an event stream describe each event; its data is JSON.
          {
            type: "object",
            required: ["data"],
            properties: {
              id: { type: "string" },
              event: { type: "string" },
              data: { type: "string", contentMediaType: "application/json", contentSchema: reference(spec.schema, where) },
            },
          }
        : { type: "string" };
  return {
    description: spec.description,
    ...(spec.headers && {
      headers: Object.fromEntries(
        Object.entries(spec.headers).map(([name, description]) => [name, { description, schema: { type: "string" } }]),
      ),
    }),
    content: { [contentType]: { schema } },
    ...(links && { links }),
  };
}

function failures(route: Route): Record<string, JsonSchema> {
  const byStatus = new Map<number, string[]>();
  for (const [code, description] of errorsOf(route)) {
    const status = ERROR_STATUS[code as ErrorCode].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), `\`${code}\`: ${description}`]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, descriptions]) => [
      String(status),
      { description: descriptions.join("; "), content: { "application/json": { schema: { $ref: `${SCHEMAS}Error` } } } },
    ]),
  );
}

export function openApiDocument(routes: readonly Route[]): JsonSchema {
  const schemas = componentSchemas();
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const operation = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description !== undefined && { description: route.description }),
      security: route.access === "open" ? [] : [{ bearer: [] }],
      ...(route.params || route.query ? { parameters: parameters(route) } : {}),
      ...(route.body && {
        requestBody: {
          required: true,
          content: { "application/json": { schema: reference(route.body, `${route.method} ${route.path}`) } },
        },
      }),
      responses: {
        ...Object.fromEntries(Object.entries(route.responses).map(([status, spec]) => [status, success(route, spec, routes, schemas)])),
        ...failures(route),
      },
    };
    const path = openApiPath(route.path);
    paths[path] = { ...paths[path], [route.method.toLowerCase()]: operation };
  }
  return {
    openapi: "3.1.1",
    info: {
      title: "Training dispatcher",
      version: "1",
      description:
        "Submit, inspect, log and stop training jobs on Kubernetes or locally. Every error has one shape (Error). " +
        `Bodies must be JSON objects nested at most ${MAX_JSON_DEPTH} levels deep.`,
    },
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } }, schemas },
    paths,
  };
}
