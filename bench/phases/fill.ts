/** Fills a namespace with suspended training Jobs (the rendered manifest with spec.suspend: true). */
import { BatchV1Api, type V1Job } from "@kubernetes/client-node";
import type { PhaseContext } from "../context.ts";
import { bareCreator, manifestFactory, nextJobId, RUN_ID } from "../requests.ts";
import { now, pool, round, until } from "../stats.ts";

export interface Fill {
  readonly jobIds: readonly number[];
  readonly seconds: number;
  readonly perSecond: number;
}

export async function fillSuspended(
  ctx: PhaseContext,
  namespace: string,
  count: number,
  onProgress?: (created: number) => Promise<void> | void,
): Promise<Fill> {
  const create = bareCreator(ctx.kubeConfig, namespace);
  const manifest = manifestFactory(namespace, { suspend: true });
  const jobIds = Array.from({ length: count }, () => nextJobId());
  const created: number[] = [];
  const started = now();
  let lastLog = started;
  const outcome = await pool(
    jobIds,
    ctx.config.createConcurrency,
    async (jobId) => {
      await create(manifest(jobId));
      created.push(jobId);
      if (now() - lastLog > 5000) {
        lastLog = now();
        await onProgress?.(created.length);
      }
    },
    ctx.signal,
  );
  const seconds = (now() - started) / 1000;
  if (outcome.failed > 0)
    throw new Error(`${outcome.failed} of ${count} creates failed in ${namespace}; first: ${outcome.firstErrors.join(" | ")}`);
  return { jobIds: created, seconds: round(seconds, 1), perSecond: round(created.length / seconds, 1) };
}

/** How many of this run's Jobs in the namespace match, read page by page. */
export async function countBenchJobs(ctx: PhaseContext, namespace: string, matches: (job: V1Job) => boolean = () => true): Promise<number> {
  const batch = ctx.kubeConfig.makeApiClient(BatchV1Api);
  let count = 0;
  let token: string | undefined;
  do {
    const page = await batch.listNamespacedJob({
      namespace,
      labelSelector: `bench-run=${RUN_ID}`,
      limit: 500,
      ...(token !== undefined && { _continue: token }),
    });
    count += page.items.filter(matches).length;
    token = page.metadata?._continue || undefined;
  } while (token);
  return count;
}

/** Waits until the Job controller has marked every bench Job in the namespace Suspended, so it is quiet. */
export async function untilSuspended(ctx: PhaseContext, namespace: string, count: number, timeoutMs: number): Promise<void> {
  await until(
    `the Job controller to mark ${count} Jobs in ${namespace} Suspended`,
    async () =>
      (await countBenchJobs(
        ctx,
        namespace,
        (job) => job.status?.conditions?.some((c) => c.type === "Suspended" && c.status === "True") ?? false,
      )) >= count,
    timeoutMs,
    ctx.signal,
    2000,
  );
}
