/**
 * Offline rules for the Dockerfiles under images/ (no Docker engine needed): each
 * check takes Dockerfile text and returns its problems, one message each, so a test
 * can show every rule catching a bad Dockerfile as well as passing ours.
 */
import { posix } from "node:path";
import { Copy, type Dockerfile, DockerfileParser, Env, type Instruction, JSONInstruction, Keyword } from "dockerfile-ast";

const KEYWORDS: ReadonlySet<string> = new Set(Object.values(Keyword));

interface Stage {
  /** The image after FROM, with the global ARGs' defaults substituted. */
  readonly image: string;
  readonly name: string | undefined;
  /** The stage's instructions after its FROM. */
  readonly instructions: readonly Instruction[];
}

const lineOf = (instruction: Instruction) => instruction.getRange().start.line + 1;
const argumentValues = (instruction: Instruction) => instruction.getArguments().map((argument) => argument.getValue());

/** Defaults of the ARGs declared before the first FROM: the only variables FROM can use. */
function globalArgs(dockerfile: Dockerfile): Map<string, string> {
  const args = new Map<string, string>();
  for (const arg of dockerfile.getInitialARGs()) {
    const property = arg.getProperty();
    const value = property?.getValue();
    if (property && value !== null && value !== undefined) args.set(property.getName(), value);
  }
  return args;
}

function substitute(text: string, variables: ReadonlyMap<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced?: string, bare?: string) => variables.get(braced ?? bare ?? "") ?? whole);
}

function stagesOf(dockerfile: Dockerfile): Stage[] {
  const args = globalArgs(dockerfile);
  const stages: (Stage & { instructions: Instruction[] })[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === Keyword.FROM) {
      const [image = "", as, name] = argumentValues(instruction).filter((value) => !value.startsWith("--"));
      stages.push({ image: substitute(image, args), name: as?.toUpperCase() === "AS" ? name : undefined, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

const parse = (source: string) => DockerfileParser.parse(source);

/** Instructions Docker does not know, anything but ARG before the first FROM, exec forms that are not JSON. */
export function syntaxProblems(source: string): string[] {
  const problems: string[] = [];
  let seenFrom = false;
  for (const instruction of parse(source).getInstructions()) {
    const keyword = instruction.getKeyword();
    if (!KEYWORDS.has(keyword)) problems.push(`line ${lineOf(instruction)}: unknown instruction ${keyword}`);
    if (keyword === Keyword.FROM) seenFrom = true;
    else if (!seenFrom && keyword !== Keyword.ARG) problems.push(`line ${lineOf(instruction)}: ${keyword} before the first FROM`);
    const content = instruction.getArgumentsContent() ?? "";
    if (instruction instanceof JSONInstruction && content.trimStart().startsWith("[") && !isStringArray(content)) {
      problems.push(`line ${lineOf(instruction)}: ${keyword} is not a JSON array of strings (Docker would run it through a shell)`);
    }
  }
  if (!seenFrom) problems.push("no FROM instruction");
  return problems;
}

function isStringArray(json: string): boolean {
  try {
    const value: unknown = JSON.parse(json);
    return Array.isArray(value) && value.every((item) => typeof item === "string");
  } catch {
    return false;
  }
}

/** Splits `registry:5000/path/name:tag@sha256:...` into its repository, tag and digest. */
export function imageReference(image: string): { repository: string; tag: string | undefined; digest: string | undefined } {
  const [nameAndTag = "", digest] = image.split("@");
  const lastColon = nameAndTag.lastIndexOf(":");
  const hasTag = lastColon > nameAndTag.lastIndexOf("/");
  return {
    repository: hasTag ? nameAndTag.slice(0, lastColon) : nameAndTag,
    tag: hasTag ? nameAndTag.slice(lastColon + 1) : undefined,
    digest,
  };
}

/** Every FROM names an earlier stage, `scratch`, or an image with a tag other than `latest` (or a digest). */
export function baseImageProblems(source: string): string[] {
  const problems: string[] = [];
  const earlierStages = new Set<string>();
  for (const { image, name } of stagesOf(parse(source))) {
    if (image.includes("$")) {
      problems.push(`FROM ${image}: a variable without a default, so what is pinned cannot be checked`);
    } else if (!earlierStages.has(image) && image !== "scratch") {
      const { tag, digest } = imageReference(image);
      if (digest === undefined && tag === undefined) problems.push(`FROM ${image}: no tag, which means latest`);
      if (tag === "latest") problems.push(`FROM ${image}: latest is not a version`);
    }
    if (name) earlierStages.add(name);
  }
  return problems;
}

/** COPY --from names an earlier stage: a typo would otherwise pull an image of that name from Docker Hub. */
export function copyFromProblems(source: string): string[] {
  const problems: string[] = [];
  const earlierStages = new Set<string>();
  for (const stage of stagesOf(parse(source))) {
    for (const instruction of stage.instructions) {
      const from = instruction.getKeyword() === Keyword.COPY ? copyFrom(instruction) : undefined;
      if (from !== undefined && !earlierStages.has(from)) {
        problems.push(`line ${lineOf(instruction)}: COPY --from=${from} names no earlier stage`);
      }
    }
    if (stage.name) earlierStages.add(stage.name);
  }
  return problems;
}

function copyFrom(instruction: Instruction): string | undefined {
  return instruction instanceof Copy ? (instruction.getFromFlag()?.getValue() ?? undefined) : undefined;
}

/**
 * The final stage ends as a numeric non-root user. Numeric, because Kubernetes can only
 * verify runAsNonRoot for a uid; stated in the final stage, because an inherited or
 * missing USER silently means whatever the base image chose, often root.
 */
export function finalUserProblems(source: string): string[] {
  const finalStage = stagesOf(parse(source)).at(-1);
  const user = finalStage?.instructions.findLast((instruction) => instruction.getKeyword() === Keyword.USER);
  if (!user) return ["the final stage sets no USER"];
  const value = argumentValues(user).join(" ");
  const uid = /^(\d+)(?::\d+)?$/.exec(value)?.[1];
  if (uid === undefined) return [`USER ${value}: not a numeric uid[:gid]`];
  if (Number(uid) === 0) return [`USER ${value}: root`];
  return [];
}

const SECRET_NAME = /KEY|SECRET|TOKEN|PASSW|CREDENTIAL/i;

/** No ENV or ARG named like a secret carries a value: it would be readable in every layer and in `docker history`. */
export function secretProblems(source: string): string[] {
  const dockerfile = parse(source);
  const properties = [
    ...dockerfile.getENVs().flatMap((env) => env.getProperties()),
    ...dockerfile.getARGs().flatMap((arg) => arg.getProperty() ?? []),
  ];
  return properties
    .filter((property) => SECRET_NAME.test(property.getName()) && (property.getValue() ?? "") !== "")
    .map((property) => `${property.getName()} has a value baked into the image`);
}

/** What a container of the image starts with, as far as these rules care. */
export interface ImageConfig {
  /** Exec form as an array, shell form as a string. */
  readonly entrypoint: readonly string[] | string | undefined;
  readonly cmd: readonly string[] | string | undefined;
  readonly workdir: string;
  readonly user: string | undefined;
  readonly env: Readonly<Record<string, string>>;
  /** Absolute path of every file or folder COPY put in the image -> where it came from (`context` or a stage name). */
  readonly files: ReadonlyMap<string, string>;
}

export const EMPTY_IMAGE: ImageConfig = { entrypoint: undefined, cmd: undefined, workdir: "/", user: undefined, env: {}, files: new Map() };

function execOrShellForm(instruction: Instruction): readonly string[] | string {
  const content = instruction.getArgumentsContent() ?? "";
  return content.trimStart().startsWith("[") && isStringArray(content) ? (JSON.parse(content) as string[]) : content;
}

/**
 * The final stage's configuration. A stage FROM another stage starts from that stage's;
 * any other FROM starts from `baseImage(image)`, so a test can chain our own images.
 */
export function imageConfig(source: string, baseImage: (image: string) => ImageConfig = () => EMPTY_IMAGE): ImageConfig {
  const stages = stagesOf(parse(source));
  const configs = new Map<string, ImageConfig>();
  let config = EMPTY_IMAGE;
  for (const stage of stages) {
    config = stageConfig(stage, configs.get(stage.image) ?? baseImage(stage.image));
    if (stage.name) configs.set(stage.name, config);
  }
  return config;
}

function stageConfig(stage: Stage, inherited: ImageConfig): ImageConfig {
  let { entrypoint, cmd, workdir, user } = inherited;
  const env = { ...inherited.env };
  const files = new Map(inherited.files);
  for (const instruction of stage.instructions) {
    switch (instruction.getKeyword()) {
      case Keyword.ENTRYPOINT:
        entrypoint = execOrShellForm(instruction);
        cmd = undefined; // Docker resets an inherited CMD when ENTRYPOINT is set.
        break;
      case Keyword.CMD:
        cmd = execOrShellForm(instruction);
        break;
      case Keyword.WORKDIR:
        workdir = posix.resolve(workdir, argumentValues(instruction).join(" "));
        break;
      case Keyword.USER:
        user = argumentValues(instruction).join(" ");
        break;
      case Keyword.ENV:
        if (instruction instanceof Env)
          for (const property of instruction.getProperties()) env[property.getName()] = property.getValue() ?? "";
        break;
      case Keyword.COPY:
        for (const [path, origin] of copiedPaths(instruction, workdir)) files.set(path, origin);
        break;
    }
  }
  return { entrypoint, cmd, workdir, user, env, files };
}

/** Where each source of a COPY lands, following Docker's rules for a destination folder. */
function copiedPaths(instruction: Instruction, workdir: string): [string, string][] {
  const values = argumentValues(instruction);
  const destination = posix.resolve(workdir, values.at(-1) ?? ".");
  const sources = values.slice(0, -1);
  const intoFolder = sources.length > 1 || /(^|\/)\.?\/?$/.test(values.at(-1) ?? "");
  const origin = copyFrom(instruction) ?? "context";
  return sources.map((source) => [intoFolder ? posix.join(destination, posix.basename(source)) : destination, origin]);
}

/** Sources a Dockerfile COPYs from its build context (not from other stages). */
export function contextSources(source: string): string[] {
  return parse(source)
    .getCOPYs()
    .filter((copy) => copyFrom(copy) === undefined)
    .flatMap((copy) => argumentValues(copy).slice(0, -1));
}

/**
 * A trainer image starts the way the TrainingJob does: ENTRYPOINT is the trainer command
 * in exec form (so SIGTERM reaches python, not a shell), no CMD (the Job's arguments follow
 * the command), and train.py sits in the WORKDIR the command runs in.
 */
export function trainerContractProblems(config: ImageConfig, trainerCommand: readonly string[]): string[] {
  const problems: string[] = [];
  if (typeof config.entrypoint === "string") problems.push(`ENTRYPOINT ${config.entrypoint}: shell form, so SIGTERM would go to a shell`);
  else if (JSON.stringify(config.entrypoint) !== JSON.stringify(trainerCommand)) {
    problems.push(`ENTRYPOINT ${JSON.stringify(config.entrypoint)} is not ${JSON.stringify(trainerCommand)}`);
  }
  if (config.cmd !== undefined && config.cmd.length > 0)
    problems.push(`CMD ${JSON.stringify(config.cmd)} would precede the Job's arguments`);
  const script = trainerCommand.at(-1) ?? "";
  if (!config.files.has(posix.join(config.workdir, script))) problems.push(`no ${script} is copied into WORKDIR ${config.workdir}`);
  return problems;
}

const PINNED_REQUIREMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9][A-Za-z0-9.+!-]*$/;

/** Names of the packages a requirements file pins (lower-case, `_` and `.` as `-`). */
export function requirementNames(text: string): string[] {
  return requirementLines(text).map((line) => line.split(/[[=]/)[0]?.toLowerCase().replace(/[._]/g, "-") ?? "");
}

function requirementLines(text: string): string[] {
  return text
    .split("\n")
    .map((line) => line.replace(/(^|\s)#.*$/, "").trim())
    .filter(Boolean);
}

/** Every line of a requirements file is `name==version`: no ranges, no wildcards, no options or URLs. */
export function requirementProblems(text: string): string[] {
  return requirementLines(text)
    .filter((line) => !PINNED_REQUIREMENT.test(line))
    .map((line) => `${line}: not pinned as name==version`);
}
