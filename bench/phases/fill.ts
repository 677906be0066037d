/** Fills a namespace with suspended training Jobs (the rendered manifest with spec.suspend: true). */
import { BatchV1Api } from "@kubernetes/client-node";
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

/** Waits until the Job controller has marked every bench Job in the namespace Suspended, so it is quiet. */
export async function untilSuspended(ctx: PhaseContext, namespace: string, count: number, timeoutMs: number): Promise<void> {
  const batch = ctx.kubeConfig.makeApiClient(BatchV1Api);
  await until(
    `the Job controller to mark ${count} Jobs in ${namespace} Suspended`,
    async () => {
      let suspended = 0;
      let token: string | undefined;
      do {
        const page = await batch.listNamespacedJob({
          namespace,
          labelSelector: `bench-run=${RUN_ID}`,
          limit: 500,
          ...(token !== undefined && { _continue: token }),
        });
        suspended += page.items.filter((job) => job.status?.conditions?.some((c) => c.type === "Suspended" && c.status === "True")).length;
        token = page.metadata?._continue || undefined;
      } while (token);
      return suspended >= count;
    },
    timeoutMs,
    ctx.signal,
    2000,
  );
}
