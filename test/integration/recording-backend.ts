// A real HTTP server playing the backend's TrainingLogger status and logs endpoints for the
// integration tests: it records what it accepts, and answers 500 while told to fail.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { BACKEND_TOKEN_HEADER, type LogCallback, type StatusCallback } from "../../dispatcher/live/backend-callbacks.ts";

/** The backend: records every status and log call it accepts; answers 500 while `failing`. */
export class RecordingBackend {
  readonly accepted: { jobId: number; body: StatusCallback }[] = [];
  readonly logged: { jobId: number; body: LogCallback }[] = [];
  refused = 0;
  failing = false;
  tokens = new Set<string | undefined>();
  private readonly server: Server = createServer((request, response) => {
    let raw = "";
    request.on("data", (chunk) => {
      raw += chunk;
    });
    request.on("end", () => {
      const match = request.url?.match(/^\/api\/v1\/internal\/training\/jobs\/(\d+)\/(status|logs)$/);
      this.tokens.add(request.headers[BACKEND_TOKEN_HEADER] as string | undefined);
      if (!match || request.method !== "POST") {
        response.writeHead(404).end();
        return;
      }
      if (this.failing) {
        this.refused += 1;
        response.writeHead(500).end("backend down");
        return;
      }
      const call = { jobId: Number(match[1]), body: JSON.parse(raw) };
      if (match[2] === "status") this.accepted.push(call);
      else this.logged.push(call);
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  url = "";

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
  of(jobId: number): StatusCallback[] {
    return this.accepted.filter((call) => call.jobId === jobId).map((call) => call.body);
  }
  logsOf(jobId: number): LogCallback[] {
    return this.logged.filter((call) => call.jobId === jobId).map((call) => call.body);
  }
}
