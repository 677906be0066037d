// The live status's poller of Kueue's visibility API, against an API server address where nothing
// listens: it asks only while a job waits, keeps what it knew through an outage and logs it once.
import { createServer } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { QueuePositions } from "../../dispatcher/live/queue-positions.ts";
import { until } from "../integration/until.ts";

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

async function unreachableCluster(): Promise<KubeConfig> {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "gone", server: `https://127.0.0.1:${await closedPort()}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "c", cluster: "gone", user: "u" }],
    currentContext: "c",
  });
  return kubeConfig;
}

let poller: QueuePositions | undefined;
afterEach(() => poller?.stop());

describe("QueuePositions", () => {
  it("sends no request while no job waits", async () => {
    poller = new QueuePositions({
      kubeConfig: await unreachableCluster(),
      namespace: "training",
      intervalMs: 10,
      waiting: () => new Map(),
      changed: () => undefined,
    });
    poller.start();
    await until("three polls", () => (poller?.polls ?? 0) >= 3);
    expect(poller.requests).toBe(0);
  });

  it("asks per waiting LocalQueue; a visibility API that does not answer is logged once and changes no job", async () => {
    const lines: { level: string; message: string }[] = [];
    const changed: string[] = [];
    poller = new QueuePositions({
      kubeConfig: await unreachableCluster(),
      namespace: "training",
      intervalMs: 10,
      waiting: () => new Map([["project-1", new Map([["job-training-job-1-abcde", "training-job-1"]])]]),
      changed: (job) => changed.push(job),
      log: (level, message) => lines.push({ level, message }),
    });
    poller.start();
    await until("three polls", () => (poller?.polls ?? 0) >= 3);
    expect(poller.requests).toBeGreaterThanOrEqual(3);
    expect(lines).toEqual([{ level: "warn", message: "queue positions unavailable; keeping the last known" }]);
    expect(poller.positionOf("job-training-job-1-abcde")).toBeUndefined();
    expect(changed).toEqual([]);
  });
});
