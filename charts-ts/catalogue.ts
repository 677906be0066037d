/**
 * The framework catalogue: the one place that says which trainer image serves a
 * framework, what it can train, which dataset layouts it reads and what it asks
 * of a node by default. The request schema, the TrainingJob construct, the
 * images' tests and the CI image matrix all read it from here.
 */

export interface ResourceDefaults {
  readonly gpu: number;
  readonly cpu: string;
  readonly memory: string;
  readonly cpuRequest: string;
  readonly memoryRequest: string;
}

export interface FrameworkEntry {
  /** Image repository under the platform registry; the tag is the trainer image version. */
  readonly imageRepository: string;
  /** The folder under images/ that builds this trainer. */
  readonly imageContext: string;
  readonly taskTypes: readonly [string, ...string[]];
  readonly datasetFormats: readonly [string, ...string[]];
  readonly defaultResources: ResourceDefaults;
}

/** The plan's resources default: one GPU, 4 CPU / 16Gi limits, 2 CPU / 8Gi requests. */
const PLAN_DEFAULT_RESOURCES: ResourceDefaults = {
  gpu: 1,
  cpu: "4",
  memory: "16Gi",
  cpuRequest: "2",
  memoryRequest: "8Gi",
};

export const FRAMEWORK_CATALOGUE = {
  ultralytics: {
    imageRepository: "trainer-ultralytics",
    imageContext: "images/trainer-ultralytics",
    taskTypes: ["object_detection", "instance_segmentation", "image_classification", "pose_estimation"],
    datasetFormats: ["yolo", "coco"],
    defaultResources: PLAN_DEFAULT_RESOURCES,
  },
  timm: {
    imageRepository: "trainer-timm",
    imageContext: "images/trainer-timm",
    taskTypes: ["image_classification"],
    datasetFormats: ["imagefolder"],
    defaultResources: PLAN_DEFAULT_RESOURCES,
  },
  transformers: {
    imageRepository: "trainer-transformers",
    imageContext: "images/trainer-transformers",
    taskTypes: ["image_classification", "object_detection", "semantic_segmentation"],
    datasetFormats: ["imagefolder", "coco", "huggingface"],
    // Transformer checkpoints and their optimizer state need more host memory than CNNs.
    defaultResources: { ...PLAN_DEFAULT_RESOURCES, memory: "32Gi", memoryRequest: "16Gi" },
  },
} as const satisfies Record<string, FrameworkEntry>;

export type Framework = keyof typeof FRAMEWORK_CATALOGUE;

export const FRAMEWORKS = Object.keys(FRAMEWORK_CATALOGUE) as [Framework, ...Framework[]];

/** What a registry answers for one pushed image: `sha256:` and 64 lower-case hex digits. */
export const IMAGE_DIGEST = /^sha256:[0-9a-f]{64}$/;

/** `<registry>/<repository>:<version>`, and `@<digest>` to name exactly one build of it. */
export function trainerImage(framework: Framework, registry: string, version: string, digest?: string): string {
  return `${registry}/${FRAMEWORK_CATALOGUE[framework].imageRepository}:${version}${digest !== undefined ? `@${digest}` : ""}`;
}

/** Image repository of the dispatcher, under the same registry as the trainers. */
export const DISPATCHER_IMAGE_REPOSITORY = "training-dispatcher";
