// The HTTP edge, with no executor behind it doing work: auth, the error shape, input
// validation and the generated documents. Requests go through Fastify's real router and
// parsers via inject(); jobs run in the integration and local-executor tests.
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalExecutor } from "../../dispatcher/executors/local-executor.ts";
import { buildServer } from "../../dispatcher/http/server.ts";

const token = "edge-test-token";
const workDir = mkdtempSync(join(tmpdir(), "edge-"));
const auth = { authorization: `Bearer ${token}` };
let app: ReturnType<typeof buildServer>;

beforeAll(async () => {
  const local = await LocalExecutor.open({ trainerDir: workDir, python: "false", workDir, graceSeconds: 1, environment: {} });
  app = buildServer({ apiToken: token, bodyLimitBytes: 16 * 1024, defaultExecutor: "local", executors: { local } });
});
afterAll(() => app.close());

const valid = {
  jobId: 5,
  framework: "timm",
  taskType: "image_classification",
  modelName: "resnet18",
  dataset: { path: "d", format: "imagefolder" },
};

describe("authentication", () => {
  it.each([
    ["no header", {}],
    ["a wrong token", { authorization: "Bearer nope" }],
    ["a token prefix", { authorization: `Bearer ${token.slice(0, 5)}` }],
    ["another scheme", { authorization: `Basic ${token}` }],
  ])("answers 401 to %s", async (_name, headers) => {
    const response = await app.inject({ method: "GET", url: "/v1/jobs", headers });
    expect(response.statusCode).toBe(401);
    expect(response.json()).toEqual({ error: { code: "unauthorized", message: "send Authorization: Bearer <token>" } });
  });

  it("leaves probes and the OpenAPI document open", async () => {
    for (const url of ["/healthz", "/readyz", "/openapi.json"]) {
      expect((await app.inject({ method: "GET", url })).statusCode, url).toBe(200);
    }
  });
});

describe("bad input", () => {
  const post = (payload: string, headers: Record<string, string> = {}) =>
    app.inject({ method: "POST", url: "/v1/jobs", payload, headers: { ...auth, "content-type": "application/json", ...headers } });

  it.each([
    ["malformed JSON", '{"jobId": 5,', 400, "invalid_request", undefined],
    ["an empty body", "", 400, "invalid_request", undefined],
    ["a JSON array", "[]", 400, "invalid_request", ""],
    ["a wrong type", JSON.stringify({ ...valid, epochs: "ten" }), 400, "invalid_request", "epochs"],
    ["an unknown field", JSON.stringify({ ...valid, gpus: 1 }), 400, "invalid_request", "gpus"],
    ["a flag smuggled in modelName", JSON.stringify({ ...valid, modelName: "resnet18 --epochs=1" }), 400, "invalid_request", "modelName"],
    [
      "a path escape in dataset.path",
      JSON.stringify({ ...valid, dataset: { path: "../../etc", format: "imagefolder" } }),
      400,
      "invalid_request",
      "dataset.path",
    ],
    [
      "advancedConfig that is not an object",
      JSON.stringify({ ...valid, advancedConfig: "rm -rf /" }),
      400,
      "invalid_request",
      "advancedConfig",
    ],
    [
      "an oversize body",
      JSON.stringify({ ...valid, advancedConfig: { blob: "x".repeat(20 * 1024) } }),
      413,
      "payload_too_large",
      undefined,
    ],
  ])("answers %s in the one error shape and creates nothing", async (_name, payload, status, code, field) => {
    const response = await post(payload);
    expect(response.statusCode).toBe(status);
    const body = response.json();
    expect(body.error.code).toBe(code);
    expect(typeof body.error.message).toBe("string");
    if (field) expect(body.error.field).toBe(field);
    expect(Object.keys(body)).toEqual(["error"]);
    expect(readdirSync(workDir)).toEqual([]);
  });

  it("answers 415 to a body that is not JSON", async () => {
    const response = await post("jobId=5", { "content-type": "application/x-www-form-urlencoded" });
    expect(response.statusCode).toBe(415);
    expect(response.json().error.code).toBe("unsupported_media_type");
  });

  it("refuses an executor that is not configured, naming the field", async () => {
    const response = await post(JSON.stringify({ ...valid, executor: "kubernetes" }));
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toMatchObject({ field: "executor", message: expect.stringContaining("not configured") });
  });

  it.each([
    ["/v1/jobs/abc", "jobId"],
    ["/v1/jobs/0", "jobId"],
    ["/v1/jobs?limit=0", "limit"],
    ["/v1/jobs?phase=exploded", "phase"],
    ["/v1/jobs?colour=red", "colour"],
    ["/v1/jobs/5/logs?attempt=-1", "attempt"],
  ])("validates %s", async (url, field) => {
    const response = await app.inject({ method: "GET", url, headers: auth });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.field).toBe(field);
  });

  it("answers 404 for an unknown job, route or log", async () => {
    for (const [method, url] of [
      ["GET", "/v1/jobs/999"],
      ["GET", "/v1/jobs/999/logs"],
      ["POST", "/v1/jobs/999/stop"],
      ["GET", "/v1/nothing"],
    ] as const) {
      const response = await app.inject({ method, url, headers: auth });
      expect(response.statusCode, url).toBe(404);
      expect(response.json().error.code).toBe("not_found");
    }
  });
});

describe("the OpenAPI document", () => {
  it("describes the request and status with schemas generated from the request and status schemas", async () => {
    const document = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    const request = document.components.schemas.TrainingRequest;
    // One named schema per framework, so generated clients get one model each.
    const variants = (request.oneOf ?? request.anyOf).map(
      (variant: { $ref: string }) => document.components.schemas[variant.$ref.replace("#/components/schemas/", "")],
    );
    expect((request.oneOf ?? request.anyOf).map((variant: { $ref: string }) => variant.$ref)).toEqual([
      "#/components/schemas/UltralyticsTrainingRequest",
      "#/components/schemas/TimmTrainingRequest",
      "#/components/schemas/TransformersTrainingRequest",
    ]);
    expect(variants).toHaveLength(3);
    expect(variants[0].required).toEqual(expect.arrayContaining(["jobId", "framework", "taskType", "modelName", "dataset"]));
    expect(variants[0].additionalProperties).toBe(false);
    expect(document.components.schemas.JobStatus.properties.phase.enum).toEqual([
      "pending",
      "queued",
      "starting",
      "running",
      "retrying",
      "completed",
      "failed",
      "stopped",
    ]);
  });
});
