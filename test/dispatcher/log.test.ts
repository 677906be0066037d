import { ApiException } from "@kubernetes/client-node";
import { afterEach, describe, expect, it, vi } from "vitest";
import { errorFields, jsonLinesLog } from "../../dispatcher/log.ts";

describe("errorFields", () => {
  it("keeps the API server's status and message, not its whole response", () => {
    const forbidden = new ApiException(
      403,
      "Forbidden",
      JSON.stringify({
        kind: "Status",
        message: 'nodes is forbidden: User "system:serviceaccount:training:training-dispatcher" cannot list resource "nodes"',
      }),
      {},
    );
    expect(errorFields(forbidden)).toEqual({
      status: 403,
      error: 'nodes is forbidden: User "system:serviceaccount:training:training-dispatcher" cannot list resource "nodes"',
    });
    expect(errorFields(new ApiException(502, "Bad Gateway", "<html>", {}))).toEqual({ status: 502, error: "502: <html>" });
    expect(errorFields(new Error("connect ECONNREFUSED 127.0.0.1:6443"))).toEqual({ error: "connect ECONNREFUSED 127.0.0.1:6443" });
  });
});

describe("jsonLinesLog", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("writes one JSON line per entry in pino's shape", () => {
    const lines: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    jsonLinesLog("warn", "watch broke; restarting it", { watch: "nodes", restartInMs: 150 });
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith("\n")).toBe(true);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      level: 40,
      msg: "watch broke; restarting it",
      watch: "nodes",
      restartInMs: 150,
    });
  });
});
