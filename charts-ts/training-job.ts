/**
 * TrainingJob: one batch/v1 Job per training run. `cdk8s synth` renders it for
 * review and the dispatcher renders it at run time, through the same code.
 */
import { k8s } from "cdk8s-plus-33";
import { Construct } from "constructs";
import { canonicalJson } from "./canonical-json.ts";
import { trainerImage } from "./catalogue.ts";
import { localQueueName, QUEUE_NAME_LABEL, queueProjectOf, WORKLOAD_PRIORITY_CLASS_LABEL } from "./kueue-contract.ts";
import { ANNOTATION, LABEL, TRAINING_JOB_APP, trainingJobName } from "./labels.ts";
import { durationSeconds, type TrainingRequest } from "./request.ts";
import { type PlatformSettings, type PlatformSettingsProps, platformSettings, priorityClassName } from "./settings.ts";
import {
  CONFIGURATION_ERROR_EXIT_CODES,
  TRAINER_COMMAND,
  TRAINER_ENV,
  TRAINER_FIXED_ENV,
  trainerArgs,
  WORKSPACE_DIR,
} from "./trainer-contract.ts";

/** Name of the trainer container; podFailurePolicy and log lookups refer to it. */
export const TRAINER_CONTAINER = "trainer";

/** The extended resource the NVIDIA device plugin advertises. */
export const GPU_RESOURCE = "nvidia.com/gpu";

/** Labels and taint that mark a GPU node; node pools and the test cluster use the same. */
export const GPU_NODE_LABELS = { accelerator: "nvidia-gpu", gpuType: "gpu-type" } as const;

/** Keeps pods that do not ask for GPUs off GPU nodes; training Jobs tolerate the key with `Exists`. */
export const GPU_TAINT = { key: GPU_RESOURCE, value: "true", effect: "NoSchedule" } as const;

export interface TrainingJobProps {
  /** A validated request: the output of parseTrainingRequest. */
  readonly request: TrainingRequest;
  /**
   * Cluster-wide settings: registry, namespace, secret names, retry policy.
   * @default DEFAULT_PLATFORM_SETTINGS
   */
  readonly platform?: PlatformSettingsProps;
}

export class TrainingJob extends Construct {
  /** The Job's name, `training-job-<jobId>`. */
  readonly jobName: string;
  readonly apiObject: k8s.KubeJob;

  constructor(scope: Construct, id: string, props: TrainingJobProps) {
    super(scope, id);
    this.jobName = trainingJobName(props.request.jobId);
    this.apiObject = new k8s.KubeJob(this, "Resource", renderJob(props.request, platformSettings(props.platform)));
  }
}

/** Labels the platform owns, shared by the Job and its Pods. */
function platformLabels(request: TrainingRequest): Record<string, string> {
  return {
    [LABEL.app]: TRAINING_JOB_APP,
    [LABEL.jobId]: String(request.jobId),
    [LABEL.framework]: request.framework,
    ...(request.projectId !== undefined && { [LABEL.projectId]: String(request.projectId) }),
    [LABEL.priority]: request.priority,
  };
}

function secretEnv(name: string, secret: string, key: string): k8s.EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key } } };
}

function trainerEnv(request: TrainingRequest, settings: PlatformSettings): k8s.EnvVar[] {
  return [
    secretEnv(TRAINER_ENV.s3Endpoint, settings.objectStoreSecretName, "endpoint"),
    secretEnv(TRAINER_ENV.s3AccessKey, settings.objectStoreSecretName, "access-key"),
    secretEnv(TRAINER_ENV.s3SecretKey, settings.objectStoreSecretName, "secret-key"),
    { name: TRAINER_ENV.backendUrl, valueFrom: { configMapKeyRef: { name: settings.backendConfigMapName, key: "api-url" } } },
    { name: TRAINER_ENV.mlflowTrackingUri, value: settings.mlflowTrackingUri },
    ...Object.entries(TRAINER_FIXED_ENV).map(([name, value]) => ({ name, value })),
    ...(request.resumeFrom !== undefined ? [{ name: TRAINER_ENV.resumeFrom, value: request.resumeFrom }] : []),
  ];
}

function trainerResources(request: TrainingRequest): k8s.ResourceRequirements {
  const { gpu, cpu, memory, cpuRequest, memoryRequest } = request.resources;
  // Extended resources cannot be overcommitted: the request must equal the limit.
  const gpus: Record<string, k8s.Quantity> = gpu > 0 ? { [GPU_RESOURCE]: k8s.Quantity.fromNumber(gpu) } : {};
  return {
    limits: { cpu: k8s.Quantity.fromString(cpu), memory: k8s.Quantity.fromString(memory), ...gpus },
    requests: { cpu: k8s.Quantity.fromString(cpuRequest), memory: k8s.Quantity.fromString(memoryRequest), ...gpus },
  };
}

/** Node placement: GPU jobs go to tainted GPU pools, CPU-only jobs stay off them. */
function placement(request: TrainingRequest): Pick<k8s.PodSpec, "nodeSelector" | "tolerations"> {
  if (request.resources.gpu === 0) return {};
  const { gpuType } = request.resources;
  return {
    nodeSelector: {
      accelerator: GPU_NODE_LABELS.accelerator,
      ...(gpuType !== undefined && { [GPU_NODE_LABELS.gpuType]: gpuType }),
    },
    tolerations: [{ key: GPU_TAINT.key, operator: "Exists", effect: GPU_TAINT.effect }],
  };
}

/**
 * With queueing on, Kueue decides when the Job runs: the Job names its project's LocalQueue and
 * its WorkloadPriorityClass, and is created suspended until Kueue admits it.
 */
function queueing(request: TrainingRequest, settings: PlatformSettings): { labels: Record<string, string>; suspend?: true } {
  if (!settings.queueing) return { labels: {} };
  if (request.projectId === undefined)
    throw new Error("projectId: required while queueing is on: a job waits in its project's queue (LocalQueue project-<projectId>)");
  return {
    labels: {
      [QUEUE_NAME_LABEL]: localQueueName(queueProjectOf(request.projectId)),
      [WORKLOAD_PRIORITY_CLASS_LABEL]: priorityClassName(request.priority),
    },
    suspend: true,
  };
}

/** The platform's pull secret, when it has one: the trainers and the dispatcher pull with the same. */
export function imagePullSecrets(settings: Pick<PlatformSettings, "imagePullSecret">): Pick<k8s.PodSpec, "imagePullSecrets"> {
  return settings.imagePullSecret === undefined ? {} : { imagePullSecrets: [{ name: settings.imagePullSecret }] };
}

/** The one place a request becomes a Job. */
function renderJob(request: TrainingRequest, settings: PlatformSettings): k8s.KubeJobProps {
  const labels = { ...request.labels, ...platformLabels(request) };
  const queue = queueing(request, settings);
  return {
    metadata: {
      name: trainingJobName(request.jobId),
      // Only the Job is queued: its pods exist once Kueue has admitted it and need no queue labels.
      labels: { ...labels, ...queue.labels },
      annotations: { [ANNOTATION.request]: canonicalJson(request) },
    },
    spec: {
      ...(queue.suspend && { suspend: queue.suspend }),
      ttlSecondsAfterFinished: settings.ttlSecondsAfterFinished,
      backoffLimit: settings.backoffLimit,
      activeDeadlineSeconds: durationSeconds(request.maxRuntime),
      // A replacement starts only once the failed pod is gone, so two attempts never hold GPUs at once.
      podReplacementPolicy: "Failed",
      podFailurePolicy: {
        rules: [
          {
            action: "FailJob",
            onExitCodes: { containerName: TRAINER_CONTAINER, operator: "In", values: [...CONFIGURATION_ERROR_EXIT_CODES] },
          },
          // Preemption, node drain and eviction are not the trainer's fault: retry without counting.
          { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
        ],
      },
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: "Never",
          priorityClassName: priorityClassName(request.priority),
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: settings.terminationGracePeriodSeconds,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: settings.runAsUser,
            runAsGroup: settings.runAsUser,
            fsGroup: settings.runAsUser,
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [
            {
              name: TRAINER_CONTAINER,
              image: trainerImage(
                request.framework,
                settings.registry,
                settings.trainerImageVersion,
                settings.trainerImageDigests[request.framework],
              ),
              imagePullPolicy: "IfNotPresent",
              command: [...TRAINER_COMMAND],
              args: trainerArgs(request),
              env: trainerEnv(request, settings),
              resources: trainerResources(request),
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              volumeMounts: [
                { name: "workspace", mountPath: WORKSPACE_DIR },
                { name: "tmp", mountPath: "/tmp" },
                { name: "dshm", mountPath: "/dev/shm" },
              ],
            },
          ],
          ...placement(request),
          ...imagePullSecrets(settings),
          volumes: [
            { name: "workspace", emptyDir: {} },
            { name: "tmp", emptyDir: {} },
            { name: "dshm", emptyDir: { medium: "Memory", sizeLimit: k8s.Quantity.fromString(settings.sharedMemorySize) } },
          ],
        },
      },
    },
  };
}
