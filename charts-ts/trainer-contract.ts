/**
 * The contract between the platform and a trainer image: how it is started,
 * where it may write, what its exit codes mean and which environment it gets.
 * The Kubernetes Job and the local executor both start trainers from this.
 */
import type { TrainingRequest } from "./request.ts";

/** Every trainer image's entrypoint runs this, with `trainerArgs()` appended. */
export const TRAINER_COMMAND: readonly [string, ...string[]] = ["python", "train.py"];

export const WORKSPACE_DIR = "/workspace";
export const OUTPUT_DIR = `${WORKSPACE_DIR}/output`;
export const CHECKPOINT_DIR = `${OUTPUT_DIR}/checkpoints`;

/**
 * Exit codes that mean "this configuration can never work": retrying burns GPU
 * hours for nothing, so the Job's podFailurePolicy fails it on the first one.
 * 2 is argparse's usage error; 3 is the trainer's own configuration check.
 */
export const CONFIGURATION_ERROR_EXIT_CODES: readonly number[] = [2, 3];

/** Environment variable names a trainer reads; values come from the executor. */
export const TRAINER_ENV = {
  s3Endpoint: "AWS_S3_ENDPOINT_URL",
  s3AccessKey: "AWS_ACCESS_KEY_ID",
  s3SecretKey: "AWS_SECRET_ACCESS_KEY",
  backendUrl: "BACKEND_API_URL",
  mlflowTrackingUri: "MLFLOW_TRACKING_URI",
  checkpointDir: "CHECKPOINT_DIR",
  resumeFrom: "RESUME_FROM",
} as const;

/**
 * Environment every trainer gets whatever the executor: unbuffered output so
 * logs stream as they are written, and a writable HOME for framework caches
 * (the root filesystem is read-only).
 */
export const TRAINER_FIXED_ENV: Readonly<Record<string, string>> = {
  HOME: WORKSPACE_DIR,
  PYTHONUNBUFFERED: "1",
  PYTHONDONTWRITEBYTECODE: "1",
  [TRAINER_ENV.checkpointDir]: CHECKPOINT_DIR,
};

/**
 * The train.py command line for a request, in the plan's order. Each flag is
 * one argv element of the form `--name=value`, so no value can split into a
 * second argument, and advanced_config travels as one JSON argument. The local
 * executor passes its own output folder; in a pod it is always OUTPUT_DIR.
 */
export function trainerArgs(request: TrainingRequest, outputDir: string = OUTPUT_DIR): string[] {
  const args = [
    `--framework=${request.framework}`,
    `--task_type=${request.taskType}`,
    `--model_name=${request.modelName}`,
    `--dataset_path=${request.dataset.path}`,
    `--dataset_format=${request.dataset.format}`,
  ];
  if (request.numClasses !== undefined) args.push(`--num_classes=${request.numClasses}`);
  args.push(
    `--epochs=${request.epochs}`,
    `--batch_size=${request.batchSize}`,
    `--learning_rate=${request.learningRate}`,
    `--optimizer=${request.optimizer}`,
  );
  if (request.imageSize !== undefined) args.push(`--image_size=${request.imageSize}`);
  // train.py's flag is store_true: "not pretrained" is the flag's absence.
  if (request.pretrained) args.push("--pretrained");
  args.push(`--output_dir=${outputDir}`, `--job_id=${request.jobId}`);
  if (request.projectId !== undefined) args.push(`--project_id=${request.projectId}`);
  if (request.advancedConfig !== undefined) args.push(`--advanced_config=${JSON.stringify(request.advancedConfig)}`);
  return args;
}
