/**
 * Reading Kueue: the Workloads of training Jobs and the pending workloads of a LocalQueue from
 * Kueue's visibility API (an aggregated API: `/apis/visibility.kueue.x-k8s.io/v1beta2`, which no
 * generated client covers). The watch (job-watch.ts) and the executor's GET use the same calls.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import type { CustomObjectsApi, KubeConfig, V1Job } from "@kubernetes/client-node";
import { JOB_UID_LABEL, KUEUE_API_VERSION } from "../../charts-ts/kueue-contract.ts";
import { type KueueObjects, preemptorUidOf, type Workload } from "../status/kueue-workload.ts";

const [KUEUE_GROUP, KUEUE_VERSION] = KUEUE_API_VERSION.split("/") as [string, string];
export const WORKLOADS = { group: KUEUE_GROUP, version: KUEUE_VERSION, plural: "workloads" } as const;

/** The Job (by name) a Workload was made for. */
export function jobNameOfWorkload(workload: Workload): string | undefined {
  return workload.metadata?.ownerReferences?.find((owner) => owner.kind === "Job")?.name;
}

export async function listWorkloads(custom: CustomObjectsApi, namespace: string, labelSelector?: string): Promise<Workload[]> {
  const list = (await custom.listNamespacedCustomObject({
    ...WORKLOADS,
    namespace,
    ...(labelSelector !== undefined && { labelSelector }),
  })) as { items: Workload[] };
  return list.items;
}

interface PendingWorkload {
  readonly metadata: { readonly name: string };
  readonly positionInLocalQueue: number;
}

/** GET on the API server with the kubeconfig's credentials; the body as JSON. */
async function getJson<T>(kubeConfig: KubeConfig, path: string, timeoutMs: number): Promise<T> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  const url = new URL(path, cluster.server);
  const options: RequestOptions = { method: "GET", headers: { accept: "application/json" }, timeout: timeoutMs };
  await kubeConfig.applyToHTTPSOptions(options);
  const request = url.protocol === "http:" ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("error", reject);
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${url.pathname}: ${res.statusCode} ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body) as T);
        } catch (error) {
          reject(error);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url.pathname}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** A LocalQueue's pending workloads: Workload name -> positionInLocalQueue (0 = next). */
export async function pendingPositions(
  kubeConfig: KubeConfig,
  namespace: string,
  localQueue: string,
  timeoutMs = 10_000,
): Promise<Map<string, number>> {
  const path = `/apis/visibility.${KUEUE_GROUP}/${KUEUE_VERSION}/namespaces/${encodeURIComponent(namespace)}/localqueues/${encodeURIComponent(localQueue)}/pendingworkloads`;
  const { items } = await getJson<{ items?: PendingWorkload[] }>(kubeConfig, path, timeoutMs);
  return new Map((items ?? []).map((item) => [item.metadata.name, item.positionInLocalQueue]));
}

/** What a list page reads once for all its Jobs: the namespace's Workloads, each LocalQueue's positions once. */
export interface PageReads {
  readonly workloads: readonly Workload[];
  readonly positionsOf: (localQueue: string) => Promise<Map<string, number>>;
}

export function pageReads(kubeConfig: KubeConfig, namespace: string, workloads: readonly Workload[]): PageReads {
  const positions = new Map<string, Promise<Map<string, number>>>();
  return {
    workloads,
    positionsOf: (localQueue) => {
      const known = positions.get(localQueue) ?? pendingPositions(kubeConfig, namespace, localQueue);
      positions.set(localQueue, known);
      return known;
    },
  };
}

/**
 * A Job's Workload with its queue position and preemptor, read on demand (GET, list): one list
 * call, plus the visibility API while it waits and one more list when it was preempted (a list
 * page passes what it read once instead). The position is left out when the visibility API does
 * not answer: the rest of the status stands.
 */
export async function kueueObjectsOf(
  kubeConfig: KubeConfig,
  custom: CustomObjectsApi,
  job: V1Job,
  page?: PageReads,
): Promise<KueueObjects> {
  const namespace = job.metadata?.namespace ?? "";
  const uid = job.metadata?.uid ?? "";
  const workloads = page?.workloads;
  const workload = (workloads ?? (await listWorkloads(custom, namespace, `${JOB_UID_LABEL}=${uid}`))).find(
    (candidate) => candidate.metadata?.labels?.[JOB_UID_LABEL] === uid,
  );
  if (!workload) return {};
  const preemptorUid = preemptorUidOf(workload);
  const preemptorWorkload =
    preemptorUid === undefined
      ? undefined
      : (workloads ?? (await listWorkloads(custom, namespace, `${JOB_UID_LABEL}=${preemptorUid}`))).find(
          (candidate) => candidate.metadata?.labels?.[JOB_UID_LABEL] === preemptorUid,
        );
  const preemptor = preemptorWorkload && jobNameOfWorkload(preemptorWorkload);
  const queue = workload.spec?.queueName;
  const position =
    queue === undefined || isSettled(workload)
      ? undefined
      : await (page?.positionsOf(queue) ?? pendingPositions(kubeConfig, namespace, queue)).then(
          (positions) => positions.get(workload.metadata?.name ?? ""),
          () => undefined,
        );
  return { workload, ...(position !== undefined && { position }), ...(preemptor !== undefined && { preemptor }) };
}

/** Holding quota, finished or deactivated: not in any queue's pending list. */
export function isSettled(workload: Workload): boolean {
  const conditions = workload.status?.conditions ?? [];
  return (
    workload.spec?.active === false || conditions.some((c) => (c.type === "QuotaReserved" || c.type === "Finished") && c.status === "True")
  );
}
