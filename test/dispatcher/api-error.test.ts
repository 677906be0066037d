// The API server's failures mapped by meaning. The integration tests provoke the ones the real
// control plane can give on demand (a full quota, a bad page token, a missing namespace, no
// answer at all); these are the answers it gives only when something is broken.
import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { apiServerFailure } from "../../dispatcher/api-error.ts";

const status = (code: number, message: string, details: Record<string, string> = {}) =>
  new ApiException(code, "", JSON.stringify({ kind: "Status", code, message, details }), {});

describe("apiServerFailure", () => {
  it.each([
    [500, "etcdserver: request timed out"],
    [502, "bad gateway"],
    [503, "the server is currently unable to handle the request"],
    [429, "too many requests, please try again later"],
    [401, "Unauthorized"],
    [403, 'jobs.batch is forbidden: User "system:serviceaccount:training:training-dispatcher" cannot create resource "jobs"'],
  ])("is 503 kubernetes_unavailable for the API server's %i", (code, message) => {
    const failure = apiServerFailure(status(code, message), "training");
    expect(failure.statusCode).toBe(503);
    expect(failure.toBody()).toEqual({ error: { code: "kubernetes_unavailable", message: `the Kubernetes API failed: ${message}` } });
  });

  it("is 503 when nothing answers", () => {
    expect(apiServerFailure(new Error("connect ECONNREFUSED 127.0.0.1:6443"), "training").toBody()).toEqual({
      error: { code: "kubernetes_unavailable", message: "the Kubernetes API failed: connect ECONNREFUSED 127.0.0.1:6443" },
    });
  });

  it("tells a missing training namespace from a missing object", () => {
    const namespace = status(404, 'namespaces "training" not found', { kind: "namespaces", name: "training" });
    expect(apiServerFailure(namespace, "training").message).toContain("apply the platform chart");
    const other = status(404, 'namespaces "other" not found', { kind: "namespaces", name: "other" });
    expect(apiServerFailure(other, "training").message).not.toContain("apply the platform chart");
  });

  it("is 429 quota_exceeded only for an exceeded quota, 400 naming the field for a bad request", () => {
    const quota = 'jobs.batch "training-job-1" is forbidden: exceeded quota: q, requested: count/jobs.batch=1, used: count/jobs.batch=2';
    expect(apiServerFailure(status(403, quota), "training").toBody()).toEqual({ error: { code: "quota_exceeded", message: quota } });
    expect(apiServerFailure(status(400, "invalid continue token"), "training", "pageToken").toBody()).toEqual({
      error: { code: "invalid_request", message: "pageToken: invalid continue token", field: "pageToken" },
    });
  });
});
