/**
 * Pod admission, asked of the API server itself. A server-side dry run of a Job runs the Job's
 * admission only: ResourceQuota, LimitRange and Pod Security judge the pods, which the Job
 * controller creates later, and their refusal lands as a FailedCreate event on the Job. So a
 * submission also dry-runs the Pod its Job would create, built from the Job's template as the
 * Job controller builds it, and the status reads the Job's own events.
 *
 * The dispatcher's Role grants `create` on pods for that dry run; the platform chart's
 * ValidatingAdmissionPolicy `training-dispatcher-pods-dry-run-only` refuses any pod the
 * dispatcher's ServiceAccount creates for real (RBAC cannot say "dry run only", admission can),
 * so the grant adds no way around what Jobs may run.
 */
import { ApiException, type CoreV1Api, type CoreV1Event, type V1Container, type V1Job, type V1Pod } from "@kubernetes/client-node";
import { JOB_NAME_LABEL } from "../../charts-ts/labels.ts";
import { apiServerMessage } from "../api-error.ts";
import { podRefusalOf } from "../status/pod-admission.ts";

/** The Pod the Job controller would create for the Job: its template, named and labelled as the controller does. */
export function podOf(job: V1Job): V1Pod {
  const name = job.metadata?.name ?? "";
  const template = job.spec?.template;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      ...template?.metadata,
      generateName: `${name}-`,
      namespace: job.metadata?.namespace,
      labels: { ...template?.metadata?.labels, [JOB_NAME_LABEL]: name, "job-name": name },
    },
    spec: template?.spec ?? { containers: [] },
  };
}

export interface PodVerdict {
  readonly accepted: boolean;
  readonly message?: string;
  readonly statusCode?: number;
  /** The request field the refusal is about, where one is (a LimitRange bound on cpu or memory). */
  readonly field?: string;
}

const LIMIT_FIELD: Readonly<Record<string, string>> = {
  "cpu limit": "resources.cpu",
  "memory limit": "resources.memory",
  "cpu request": "resources.cpuRequest",
  "memory request": "resources.memoryRequest",
};

/** The request field a LimitRange message names: `maximum cpu usage per Container is 64, but limit is 100` -> resources.cpu. */
function fieldOf(message: string): string | undefined {
  const match = /(?:maximum|minimum) (cpu|memory) usage per \w+ is \S+, but (limit|request) is/.exec(message);
  return match ? LIMIT_FIELD[`${match[1]} ${match[2]}`] : undefined;
}

/**
 * Whether the namespace would ever admit the Job's pod: a dry-run create of it. A quota is not a
 * refusal (it frees up or is raised; the job waits, and says so). Throws what is not the API
 * server's verdict (it cannot be reached).
 */
export async function dryRunPod(core: CoreV1Api, namespace: string, job: V1Job): Promise<PodVerdict> {
  try {
    await core.createNamespacedPod({ namespace, body: podOf(job), dryRun: "All" });
    return { accepted: true };
  } catch (error) {
    // Admission says no with 403 (quota, Pod Security, policies) or 422 (LimitRange, validation); anything
    // else (a namespace that is not there, an API server away) is no verdict on the pod.
    if (!(error instanceof ApiException) || ![400, 403, 422].includes(error.code)) throw error;
    const message = apiServerMessage(error);
    const refusal = podRefusalOf(message);
    if (refusal.reason === "QuotaExceeded") return { accepted: true };
    const field = fieldOf(refusal.message);
    return { accepted: false, statusCode: error.code, message: refusal.message, ...(field !== undefined && { field }) };
  }
}

/**
 * The Job's own events (FailedCreate while the API server refuses its pods), for a status read
 * the way the watch reads it: the history keeps a wait for admission after the pod came.
 */
export async function jobEventsOf(core: CoreV1Api, namespace: string, job: V1Job): Promise<CoreV1Event[]> {
  const events = await core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.kind=Job,involvedObject.name=${job.metadata?.name}`,
  });
  return events.items;
}

/** Every Job event in the namespace by Job name: one request for a page of statuses. */
export async function jobEventsByName(core: CoreV1Api, namespace: string): Promise<Map<string, CoreV1Event[]>> {
  const events = await core.listNamespacedEvent({ namespace, fieldSelector: "involvedObject.kind=Job" });
  return Map.groupBy(events.items, (event) => event.involvedObject.name ?? "");
}

/**
 * What pod admission judges of a pod: its spec without what varies from one training job to the
 * next (the trainer's arguments and environment; the Job name is in no part of the spec).
 * LimitRange and Pod Security look at resources, security contexts, volumes, host access.
 */
function admissionShape(namespace: string, job: V1Job): string {
  const spec = job.spec?.template.spec;
  const strip = (containers: readonly V1Container[] | undefined) => containers?.map(({ args: _a, env: _e, ...rest }) => rest);
  return JSON.stringify([namespace, { ...spec, containers: strip(spec?.containers), initContainers: strip(spec?.initContainers) }]);
}

/**
 * The pod dry run at submit, with its accepted verdicts remembered for a while per admission
 * shape: the backend submits many jobs of one shape, and a second round trip per submission
 * would double its latency. A namespace policy tightened meanwhile is caught by the next
 * dry run after `rememberMs`, and at run time by the Job's FailedCreate (failed fast).
 */
export class PodAdmission {
  private readonly core: CoreV1Api;
  private readonly rememberMs: number;
  private readonly accepted = new Map<string, number>();

  /** @param rememberMs how long an accepted shape is not asked again. @default 30_000 */
  constructor(core: CoreV1Api, rememberMs = 30_000) {
    this.core = core;
    this.rememberMs = rememberMs;
  }

  async verdict(namespace: string, job: V1Job): Promise<PodVerdict> {
    const shape = admissionShape(namespace, job);
    const now = Date.now();
    if ((this.accepted.get(shape) ?? 0) > now) return { accepted: true };
    const verdict = await dryRunPod(this.core, namespace, job);
    if (verdict.accepted) {
      for (const [known, until] of this.accepted) if (until <= now) this.accepted.delete(known);
      this.accepted.set(shape, now + this.rememberMs);
    }
    return verdict;
  }
}
