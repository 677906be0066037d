/**
 * The cluster's GPU nodes, watched (cluster-scoped: the platform chart's ClusterRole
 * grants list/watch on nodes), for the largest node of each gpu-type. Listeners hear
 * when that changes, so a job judged against yesterday's nodes is judged again.
 */
import { CoreV1Api, type KubeConfig, ListWatch, type V1Node, Watch } from "@kubernetes/client-node";
import { GPU_NODE_LABELS } from "../../charts-ts/training-job.ts";
import type { Log } from "../log.ts";
import { formatGpuNodeCapacity, type GpuNodeCapacity, largestGpuNodes } from "../status/node-fit.ts";
import { restartWhenBroken } from "./job-watch.ts";

const GPU_NODE_SELECTOR = `accelerator=${GPU_NODE_LABELS.accelerator}`;

export interface GpuNodesProps {
  readonly kubeConfig: KubeConfig;
  /** @default 200 */
  readonly minRestartDelayMs?: number;
  /** @default 10_000 */
  readonly maxRestartDelayMs?: number;
  /** @default no log */
  readonly log?: Log;
}

export class GpuNodes {
  private readonly nodes: ListWatch<V1Node>;
  private readonly listeners = new Set<() => void>();
  private largest: GpuNodeCapacity = new Map();
  private stopped = true;

  constructor(props: GpuNodesProps) {
    const core = props.kubeConfig.makeApiClient(CoreV1Api);
    this.nodes = new ListWatch<V1Node>(
      "/api/v1/nodes",
      new Watch(props.kubeConfig),
      () => core.listNode({ labelSelector: GPU_NODE_SELECTOR }),
      false,
      GPU_NODE_SELECTOR,
    );
    for (const verb of ["add", "update", "delete"] as const) this.nodes.on(verb, () => this.recount());
    // Forbidden here means the ClusterRole is missing: jobs are judged without the nodes until it is there.
    restartWhenBroken(this.nodes, {
      watch: "nodes",
      minDelayMs: props.minRestartDelayMs ?? 200,
      maxDelayMs: props.maxRestartDelayMs ?? 10_000,
      stopped: () => this.stopped,
      ...(props.log && { log: props.log }),
    });
  }

  /** Resolves once the first list has arrived (or failed: then the watch retries on its own). */
  async start(): Promise<void> {
    this.stopped = false;
    await this.nodes.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.nodes.stop();
  }

  /** GPUs of the largest node of each gpu-type, among the nodes that advertise any. */
  largestNodes(): GpuNodeCapacity {
    return this.largest;
  }

  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  private recount(): void {
    const largest = largestGpuNodes(this.nodes.list());
    if (formatGpuNodeCapacity(largest) === formatGpuNodeCapacity(this.largest)) return;
    this.largest = largest;
    for (const listener of this.listeners) listener();
  }
}
