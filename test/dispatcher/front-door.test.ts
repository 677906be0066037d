// The front door as an attacker tries it: a real listening server (raw sockets where the
// request line itself is the attack), the local executor behind it running `false` as its
// trainer, and a Kubernetes executor pointed at a port where nothing listens (the API server
// down) wherever an unavailable executor matters.
import { mkdtempSync, readdirSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TrainingRequestInput, trainingRequest } from "../../charts-ts/request.ts";
import { platformSettings } from "../../charts-ts/settings.ts";
import { KubernetesExecutor } from "../../dispatcher/executors/kubernetes-executor.ts";
import { LocalExecutor } from "../../dispatcher/executors/local-executor.ts";
import { buildServer, nestsDeeperThan } from "../../dispatcher/http/server.ts";

const token = "front-door-token";
const auth = { authorization: `Bearer ${token}` };
const workDir = mkdtempSync(join(tmpdir(), "front-door-"));

/** A Kubernetes executor whose API server refuses every connection. */
function downKubernetes(): KubernetesExecutor {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "down", server: "http://127.0.0.1:9", skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "c", cluster: "down", user: "u" }],
    currentContext: "c",
  });
  return new KubernetesExecutor({ kubeConfig, platform: platformSettings({}) });
}

const logLines: string[] = [];
const logStream = new Writable({
  write(chunk, _encoding, done) {
    logLines.push(String(chunk));
    done();
  },
});

let app: ReturnType<typeof buildServer>;
let local: LocalExecutor;
let port: number;
beforeAll(async () => {
  local = await LocalExecutor.open({ trainerDir: workDir, python: "false", workDir, graceSeconds: 1, environment: {} });
  app = buildServer({
    apiToken: token,
    bodyLimitBytes: 64 * 1024,
    defaultExecutor: "local",
    executors: { local, kubernetes: downKubernetes() },
    requestTimeoutMs: 1000,
    logger: { stream: logStream },
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  port = (app.server.address() as { port: number }).port;
});
afterAll(() => app.close());

/** Sends bytes as they are and returns everything the server answers until it closes or goes quiet. */
function raw(text: string | Buffer, quietMs = 300): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    let quiet: NodeJS.Timeout | undefined;
    const done = () => {
      socket.destroy();
      resolve(answer);
    };
    socket.on("data", (data) => {
      answer += data;
      clearTimeout(quiet);
      quiet = setTimeout(done, quietMs);
    });
    socket.on("close", () => {
      clearTimeout(quiet);
      resolve(answer);
    });
    socket.on("error", () => resolve(answer));
    socket.write(text);
  });
}

function statusOf(answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
}

function bodyOf(answer: string): unknown {
  return JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
}

const valid = (jobId: number, extra: Record<string, unknown> = {}) => ({
  jobId,
  framework: "timm",
  taskType: "image_classification",
  modelName: "resnet18",
  dataset: { path: "d", format: "imagefolder" },
  ...extra,
});

describe("authentication is decided on the matched route", () => {
  it.each([
    ["POST", "/%761/jobs"],
    ["GET", "/%761/jobs"],
    ["GET", "/v%31/jobs/5"],
    ["GET", "/%76%31/jobs/5/logs"],
    ["POST", "/v1/jobs/5/%73top"],
  ])("%s %s without a token is a 401 and creates nothing", async (method, path) => {
    const body = method === "POST" ? JSON.stringify(valid(9001)) : "";
    const answer = await raw(
      `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(statusOf(answer)).toBe(401);
    expect(bodyOf(answer)).toEqual({ error: { code: "unauthorized", message: "send Authorization: Bearer <token>" } });
    expect(readdirSync(workDir)).toEqual([]);
  });

  it("an absolute-form request line without a token is a 401", async () => {
    const answer = await raw(`GET http://127.0.0.1:${port}/v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(statusOf(answer)).toBe(401);
    const post = JSON.stringify(valid(9002));
    const created = await raw(
      `POST http://127.0.0.1:${port}/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${post.length}\r\nConnection: close\r\n\r\n${post}`,
    );
    expect(statusOf(created)).toBe(401);
    expect(readdirSync(workDir)).toEqual([]);
  });

  it.each(["bearer", "BEARER", "BeArEr"])("accepts the %s scheme (case-insensitive)", async (scheme) => {
    const response = await app.inject({ method: "GET", url: "/v1/jobs?executor=local", headers: { authorization: `${scheme} ${token}` } });
    expect(response.statusCode).toBe(200);
  });

  it("never writes a token sent in the query string to the log", async () => {
    const secret = "s3cr3t-query-token-value";
    await app.inject({ method: "GET", url: `/v1/jobs?access_token=${secret}&token=${secret}`, headers: auth });
    await app.inject({ method: "GET", url: `/healthz?token=${secret}` });
    const log = logLines.join("");
    expect(log).toContain("/healthz");
    expect(log).not.toContain(secret);
  });
});

describe("canonical jobIds only", () => {
  it.each(["0x7b", "+123", "123.0", "1.23e2", "0123", "%20123", "123%20", "-5", "0", "9007199254740993"])(
    "GET /v1/jobs/%s is a 400 naming jobId",
    async (id) => {
      const response = await app.inject({ method: "GET", url: `/v1/jobs/${id}`, headers: auth });
      expect(response.statusCode).toBe(400);
      expect(response.json().error).toMatchObject({ code: "invalid_request", field: "jobId" });
    },
  );
});

describe("every 4xx in the one error shape", () => {
  it("answers an id longer than the router takes with 414", async () => {
    const response = await app.inject({ method: "GET", url: `/v1/jobs/${"1".repeat(200)}`, headers: auth });
    expect(response.statusCode).toBe(414);
    expect(response.json()).toEqual({ error: { code: "uri_too_long", message: expect.any(String) } });
  });

  it("answers a request line longer than the parser takes with 414", async () => {
    const answer = await raw(`GET /v1/jobs/${"1".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(statusOf(answer)).toBe(414);
    expect(bodyOf(answer)).toEqual({ error: { code: "uri_too_long", message: expect.any(String) } });
  });

  it("answers headers larger than the parser takes with 431", async () => {
    const answer = await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(statusOf(answer)).toBe(431);
    expect(bodyOf(answer)).toEqual({ error: { code: "headers_too_large", message: expect.any(String) } });
  });

  it("answers an unknown method on a known path with 405 and Allow", async () => {
    const answer = await raw("QUERY /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(statusOf(answer)).toBe(405);
    expect(answer).toMatch(/\r\nallow: GET\r\n/i);
    expect(bodyOf(answer)).toMatchObject({ error: { code: "method_not_allowed" } });
    // The router's patterns, not regular expressions: the dot in openapi.json is a dot.
    expect((await app.inject({ method: "DELETE", url: "/openapiXjson" })).statusCode).toBe(404);
    // ... and a trailing slash is another path, as the router has it.
    expect((await app.inject({ method: "GET", url: "/v1/jobs/5/", headers: auth })).statusCode).toBe(404);
    const remove = await app.inject({ method: "DELETE", url: "/v1/jobs/5", headers: auth });
    expect(remove.statusCode).toBe(405);
    expect(remove.headers.allow).toBe("GET");
  });

  it("answers a method the HTTP parser does not know with 400", async () => {
    const answer = await raw("FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(statusOf(answer)).toBe(400);
    expect(bodyOf(answer)).toMatchObject({ error: { code: "invalid_request" } });
  });

  it("answers a malformed percent-encoding with 400", async () => {
    const response = await app.inject({ method: "GET", url: "/v1/jobs/%zz", headers: auth });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe("invalid_request");
  });

  it("answers JSON nested deeper than the limit with 400, not a stack overflow", async () => {
    const depth = 5000;
    const nested = `${"[".repeat(depth)}${"]".repeat(depth)}`;
    const payload = `{"jobId":7,"framework":"timm","taskType":"image_classification","modelName":"m","dataset":{"path":"d","format":"imagefolder"},"advancedConfig":{"deep":${nested}}}`;
    const response = await app.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: { ...auth, "content-type": "application/json" },
      payload,
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toMatchObject({ code: "invalid_request", message: expect.stringMatching(/nested deeper than \d+/) });
    expect(readdirSync(workDir)).toEqual([]);
  });

  it("counts nesting outside strings only", () => {
    expect(nestsDeeperThan("[[[]]]", 2)).toBe(true);
    expect(nestsDeeperThan("[[[]]]", 3)).toBe(false);
    expect(nestsDeeperThan('{"a":"[[[[[[{{{{"}', 1)).toBe(false);
    expect(nestsDeeperThan('{"a":"\\"[[[[[","b":[[1]]}', 2)).toBe(true);
    expect(nestsDeeperThan('{"a":"\\\\","b":[[1]]}', 2)).toBe(true);
  });

  it("cuts off a body sent one byte at a time", async () => {
    const body = JSON.stringify(valid(9003));
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.on("data", (data) => {
      answer += data;
    });
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("error", () => undefined);
    socket.write(
      `POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    let sent = 0;
    const drip = setInterval(() => {
      if (!socket.destroyed && sent < body.length) socket.write(body[sent++] as string);
    }, 100);
    await closed;
    clearInterval(drip);
    expect(sent).toBeLessThan(body.length);
    expect(statusOf(answer)).toBe(408);
    expect(bodyOf(answer)).toMatchObject({ error: { code: "request_timeout" } });
    expect(readdirSync(workDir)).toEqual([]);
  });
});

describe("one executor registry", () => {
  it("serves a local job while the Kubernetes API is down; lists say which executor could not answer", async () => {
    await local.submit(trainingRequest(valid(77) as TrainingRequestInput));
    const got = await app.inject({ method: "GET", url: "/v1/jobs/77", headers: auth });
    expect(got.statusCode).toBe(200);
    expect(got.json()).toMatchObject({ jobId: 77, executor: "local" });
    const logs = await app.inject({ method: "GET", url: "/v1/jobs/77/logs", headers: auth });
    expect(logs.statusCode).toBe(200);

    const listed = await app.inject({ method: "GET", url: "/v1/jobs", headers: auth });
    expect(listed.statusCode).toBe(200);
    expect(listed.json().jobs.map((job: { jobId: number }) => job.jobId)).toContain(77);
    expect(listed.json().unavailableExecutors).toEqual([{ executor: "kubernetes", message: expect.stringContaining("Kubernetes API") }]);

    // A job the local executor does not hold may be on Kubernetes: that is not a 404.
    const unknown = await app.inject({ method: "GET", url: "/v1/jobs/78", headers: auth });
    expect(unknown.statusCode).toBe(503);
    expect(unknown.json().error.code).toBe("kubernetes_unavailable");
  });

  it("refuses to create a job while an executor that might hold its jobId cannot answer", async () => {
    const response = await app.inject({ method: "POST", url: "/v1/jobs", headers: auth, payload: valid(80, { executor: "local" }) });
    expect(response.statusCode).toBe(503);
    expect(response.json().error).toMatchObject({
      code: "kubernetes_unavailable",
      message: expect.stringMatching(/^cannot tell whether the kubernetes executor already holds job 80/),
    });
    expect(await local.get(80)).toBeUndefined();
  });

  it("refuses the same jobId on a second executor with a 409 naming the one that holds it", async () => {
    await local.submit(trainingRequest(valid(79) as TrainingRequestInput));
    const second = await app.inject({ method: "POST", url: "/v1/jobs", headers: auth, payload: valid(79, { executor: "kubernetes" }) });
    expect(second.statusCode).toBe(409);
    expect(second.json().error).toMatchObject({ code: "conflict", field: "executor", message: expect.stringContaining("local executor") });
  });

  it("pages through one executor's jobs, asking only that executor, and refuses a page token it never issued", async () => {
    const list = async (query: string) => (await app.inject({ method: "GET", url: `/v1/jobs?${query}`, headers: auth })).json();
    const first = await list("executor=local&limit=1");
    expect(first.unavailableExecutors).toBeUndefined();
    expect(first.jobs).toHaveLength(1);
    expect(first.nextPageToken).toMatch(/^local:/);
    const second = await list(`executor=local&limit=1&pageToken=${encodeURIComponent(first.nextPageToken)}`);
    expect(second.jobs).toHaveLength(1);
    expect(second.jobs[0].jobId).toBeGreaterThan(first.jobs[0].jobId);
    for (const token of ["nonsense", "elsewhere:5"]) {
      const refused = await app.inject({ method: "GET", url: `/v1/jobs?pageToken=${token}`, headers: auth });
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error.field).toBe("pageToken");
    }
  });

  it("keeps serving after every request above", async () => {
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
  });
});
