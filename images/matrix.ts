/**
 * The images CI builds, derived from the framework catalogue: the trainer base, one
 * trainer per framework, the smoke trainer and the dispatcher.
 *
 * `node images/matrix.ts <wave>` prints a GitHub Actions matrix (`{"include": [...]}`) for
 * .github/workflows/images.yml. The trainers start FROM the trainer base of the same commit,
 * so CI builds in two waves: `trainer-base` (the images others build on) first, then
 * `images` (all the others, side by side).
 */
import { DISPATCHER_IMAGE_REPOSITORY, FRAMEWORK_CATALOGUE, FRAMEWORKS } from "../charts-ts/catalogue.ts";

export interface ImageBuild {
  /** Repository under the registry; CI tags every image with the commit SHA. */
  readonly repository: string;
  /** Build context, relative to the repository root. */
  readonly context: string;
  /** Dockerfile, relative to the repository root. */
  readonly dockerfile: string;
  /** Repository of the image this one builds FROM, passed as the BASE_IMAGE build argument; "" for none. */
  readonly baseImage: string;
  /** Whether it needs the platform repository's training code as the named build context `platform`. */
  readonly platformCode: boolean;
}

/** The build argument that names the trainer base an image starts FROM. */
export const BASE_IMAGE_ARG = "BASE_IMAGE";

/** The named build context holding the platform repository's train.py, adapters/ and platform_sdk/. */
export const PLATFORM_CONTEXT = "platform";

export const TRAINER_BASE_REPOSITORY = "trainer-base";
export const SMOKE_TRAINER_REPOSITORY = "smoke-trainer";

const inImages = (folder: string) => ({ context: `images/${folder}`, dockerfile: `images/${folder}/Dockerfile` });

export const IMAGE_BUILDS: readonly ImageBuild[] = [
  { repository: TRAINER_BASE_REPOSITORY, ...inImages("trainer-base"), baseImage: "", platformCode: false },
  ...FRAMEWORKS.map((framework) => {
    const { imageRepository, imageContext } = FRAMEWORK_CATALOGUE[framework];
    return {
      repository: imageRepository,
      context: imageContext,
      dockerfile: `${imageContext}/Dockerfile`,
      baseImage: TRAINER_BASE_REPOSITORY,
      platformCode: true,
    };
  }),
  { repository: SMOKE_TRAINER_REPOSITORY, ...inImages("smoke-trainer"), baseImage: TRAINER_BASE_REPOSITORY, platformCode: false },
  // The dispatcher runs charts-ts/ and dispatcher/ from source: its context is the repository root.
  { repository: DISPATCHER_IMAGE_REPOSITORY, context: ".", dockerfile: "images/dispatcher/Dockerfile", baseImage: "", platformCode: false },
];

export const WAVES = ["trainer-base", "images"] as const;
export type Wave = (typeof WAVES)[number];

export function imageMatrix(wave: Wave): { include: ImageBuild[] } {
  const bases = new Set(IMAGE_BUILDS.map((image) => image.baseImage));
  return { include: IMAGE_BUILDS.filter((image) => bases.has(image.repository) === (wave === "trainer-base")) };
}

if (import.meta.main) {
  const wave = process.argv[2];
  if (!WAVES.includes(wave as Wave)) {
    console.error(`usage: node images/matrix.ts <${WAVES.join("|")}>`);
    process.exit(2);
  }
  console.log(JSON.stringify(imageMatrix(wave as Wave)));
}
