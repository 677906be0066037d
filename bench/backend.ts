/** A local HTTP server playing the backend's status endpoint, recording when each callback arrives (log lines are accepted, not timed). */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { StatusCallback } from "../dispatcher/live/backend-callbacks.ts";

export interface ReceivedCallback {
  readonly jobId: number;
  readonly body: StatusCallback;
  /** performance.now() when the request body was complete. */
  readonly at: number;
}

export class RecordingBackend {
  url = "";
  received = 0;
  private readonly listeners = new Set<(callback: ReceivedCallback) => void>();
  private readonly server: Server = createServer((request, response) => {
    let raw = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => {
      raw += chunk;
    });
    request.on("end", () => {
      const at = performance.now();
      const match = request.url?.match(/^\/api\/v1\/internal\/training\/jobs\/(\d+)\/(status|logs)$/);
      if (!match || request.method !== "POST") {
        response.writeHead(404).end();
        return;
      }
      if (match[2] === "logs") {
        response.writeHead(200, { "content-type": "application/json" }).end("{}");
        return;
      }
      let body: StatusCallback;
      try {
        body = JSON.parse(raw) as StatusCallback;
      } catch {
        response.writeHead(400).end();
        return;
      }
      this.received += 1;
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
      const callback = { jobId: Number(match[1]), body, at };
      for (const listener of this.listeners) listener(callback);
    });
  });

  async start(): Promise<void> {
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  onCallback(listener: (callback: ReceivedCallback) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
