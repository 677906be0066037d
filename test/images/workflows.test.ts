// The GitHub workflows, parsed: what they run, on which events, and that the image matrix
// really comes from the catalogue through images/matrix.ts.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { parse } from "yaml";
import { DISPATCHER_IMAGE_REPOSITORY, FRAMEWORK_CATALOGUE, FRAMEWORKS } from "../../charts-ts/catalogue.ts";
import {
  BASE_IMAGE_ARG,
  type ImageBuild,
  PLATFORM_CONTEXT,
  SMOKE_TRAINER_REPOSITORY,
  TRAINER_BASE_REPOSITORY,
  WAVES,
} from "../../images/matrix.ts";
import { validateStackConfig } from "../../infra/config/load-stack-config.ts";
import { readStackFile, withTestSecrets } from "../infra/pulumi-mocks.ts";

// biome-ignore lint/suspicious/noExplicitAny: workflows are free-form YAML
type Json = any;

const WORKFLOWS_DIR = ".github/workflows";
const workflowFiles = readdirSync(WORKFLOWS_DIR).filter((name) => name.endsWith(".yml"));
const workflow = (name: string): Json => parse(readFileSync(join(WORKFLOWS_DIR, name), "utf8"));
const jobsOf = (name: string): [string, Json][] => Object.entries(workflow(name).jobs);
const stepsOf = (name: string): Json[] => jobsOf(name).flatMap(([, job]) => job.steps ?? []);
const runScripts = (name: string): string =>
  stepsOf(name)
    .map((step) => step.run ?? "")
    .join("\n");
/** A GitHub Actions expression as a workflow spells it: `${{ inner }}`. */
const expression = (inner: string) => `\${{ ${inner} }}`;

describe.each(workflowFiles)("%s", (name) => {
  test("has triggers and jobs", () => {
    expect(workflow(name).on).toBeTruthy();
    expect(Object.keys(workflow(name).jobs).length).toBeGreaterThan(0);
  });

  test("pins every action to a version, and calls only workflows that exist", () => {
    const uses: string[] = [...jobsOf(name).map(([, job]) => job.uses), ...stepsOf(name).map((step) => step.uses)].filter(Boolean);
    const unpinned = uses.filter((use) => !use.startsWith("./") && !/@(v\d+(\.\d+)*|[0-9a-f]{40})$/.test(use));
    expect(unpinned).toEqual([]);
    expect(uses.filter((use) => use.startsWith("./") && !existsSync(use))).toEqual([]);
  });

  test("grants the token read access by default", () => {
    expect(workflow(name).permissions?.contents).toBe("read");
  });
});

describe("ci.yml", () => {
  test("runs .ci/run on pushes and pull requests", () => {
    expect(Object.keys(workflow("ci.yml").on)).toEqual(expect.arrayContaining(["push", "pull_request"]));
    expect(runScripts("ci.yml")).toMatch(/^bash \.ci\/run$/m);
  });
});

describe("images.yml", () => {
  const images = workflow("images.yml");
  /** The matrix the workflow gets, from the same command it runs. */
  const matrix = (wave: string): ImageBuild[] =>
    JSON.parse(execFileSync(process.execPath, ["images/matrix.ts", wave], { encoding: "utf8" })).include;

  test("computes each wave's matrix with `node images/matrix.ts <wave>`", () => {
    for (const wave of WAVES) expect(runScripts("images.yml")).toContain(`node images/matrix.ts ${wave}`);
  });

  test("builds every catalogue framework, the trainer base, the smoke trainer and the dispatcher", () => {
    const built = WAVES.flatMap((wave) => matrix(wave).map((image) => image.repository));
    const frameworks = FRAMEWORKS.map((framework) => FRAMEWORK_CATALOGUE[framework].imageRepository);
    expect(built.sort()).toEqual([...frameworks, TRAINER_BASE_REPOSITORY, SMOKE_TRAINER_REPOSITORY, DISPATCHER_IMAGE_REPOSITORY].sort());
  });

  test("builds the trainer base first, and what starts FROM it after", () => {
    expect(matrix("trainer-base").map((image) => image.repository)).toEqual([TRAINER_BASE_REPOSITORY]);
    expect(matrix("images").every((image) => image.baseImage === "" || image.baseImage === TRAINER_BASE_REPOSITORY)).toBe(true);
    const [first, second] = WAVES.map((wave) => images.jobs[wave]);
    expect(first.with.matrix).toContain(`outputs.${WAVES[0]}`);
    expect(second.with.matrix).toContain(`outputs.${WAVES[1]}`);
    expect(second.needs).toContain(WAVES[0]);
  });

  test("runs when pulumi.yml deploys a commit (or by hand), never on a push of its own, which would build that commit twice", () => {
    expect(Object.keys(images.on).sort()).toEqual(["workflow_call", "workflow_dispatch"]);
  });

  test("pushes each image to ghcr.io tagged with the commit SHA, with the base and platform code it needs", () => {
    const build = stepsOf("build-image.yml").find((step) => step.uses?.startsWith("docker/build-push-action@"));
    expect(build.with.push).toBe(true);
    expect(build.with.tags).toMatch(/:\$\{\{ github\.sha \}\}$/);
    expect(build.with.context).toBe(expression("matrix.context"));
    expect(build.with.file).toBe(expression("matrix.dockerfile"));
    const script = runScripts("build-image.yml");
    expect(script).toContain('registry="ghcr.io/');
    expect(script).toContain(`build-args=${BASE_IMAGE_ARG}=$registry/$BASE_REPOSITORY:$GITHUB_SHA`);
    expect(script).toContain(`build-contexts=${PLATFORM_CONTEXT}=`);
  });
});

describe("synth-diff.yml", () => {
  test("synthesizes on pull requests and fails on a dist/ difference", () => {
    expect(Object.keys(workflow("synth-diff.yml").on)).toEqual(["pull_request"]);
    const script = runScripts("synth-diff.yml");
    expect(script).toMatch(/^npm run synth$/m);
    expect(script).toContain("git diff --quiet -- dist");
    expect(script).toMatch(/exit 1/);
  });
});

describe("pulumi.yml", () => {
  const pulumi = workflow("pulumi.yml");
  const calls = jobsOf("pulumi.yml").filter(([, job]) => job.uses === "./.github/workflows/pulumi-stack.yml");
  const stacksOf = (job: Json): string[] => job.strategy?.matrix?.stack ?? [job.with.stack];
  const cloudStacks = readdirSync("stacks")
    .map((file) => /^Pulumi\.(.+)\.yaml$/.exec(file)?.[1])
    .filter((stack) => stack !== undefined && stack !== "local");

  test("previews every cloud stack on pull requests, with the images that commit would deploy", () => {
    const previews = calls.filter(([, job]) => job.with.command === "preview");
    expect(previews.flatMap(([, job]) => stacksOf(job)).sort()).toEqual(cloudStacks.sort());
    for (const [, job] of previews) {
      expect(job.if).toBe("github.event_name == 'pull_request'");
      expect(job.with["image-tag"]).toBe(expression("github.event.pull_request.head.sha"));
    }
  });

  test("builds this commit's images before any `up`, and every `up` deploys exactly that commit's tag", () => {
    const [buildJob, build] = jobsOf("pulumi.yml").find(([, job]) => job.uses === "./.github/workflows/images.yml") ?? [];
    expect(build.if).toBe("github.event_name == 'push' && github.ref == 'refs/heads/main'");
    expect(build.permissions).toEqual({ contents: "read", packages: "write" });
    const ups = calls.filter(([, job]) => job.with.command === "up");
    const first = ups.filter(([, job]) => !ups.some(([other]) => other === job.needs));
    expect(first.map(([, job]) => job.needs)).toEqual([buildJob]);
    for (const [, job] of ups) expect(job.with["image-tag"]).toBe(expression("github.sha"));
    // A change to an image or its workflows is deployed too: the stacks' tags follow every build.
    expect(pulumi.on.push.paths).toEqual(
      expect.arrayContaining(["images/**", ".github/workflows/images.yml", ".github/workflows/build-image.yml"]),
    );
  });

  test("runs `pulumi up` only on pushes to main, each stack once, behind a GitHub environment", () => {
    const ups = calls.filter(([, job]) => job.with.command === "up");
    expect(ups.flatMap(([, job]) => stacksOf(job)).sort()).toEqual(cloudStacks.sort());
    expect(pulumi.on.push.branches).toEqual(["main"]);
    for (const [, job] of ups) {
      expect(job.if).toBe("github.event_name == 'push' && github.ref == 'refs/heads/main'");
      const environments = new Set(stacksOf(job).map((stack) => (stack.startsWith("prod-") ? "production" : "development")));
      expect([...environments]).toEqual([job.with.environment]);
    }
  });

  test("applies production only after dev succeeded", () => {
    const [, upProd] = calls.find(([, job]) => job.with.command === "up" && job.with.environment === "production") ?? [];
    const [devJob] = calls.find(([, job]) => job.with.command === "up" && job.with.environment === "development") ?? [];
    expect(upProd.needs).toBe(devJob);
  });

  test("the called workflow sets the stack's image tags, and on `up` every image's digest, before running Pulumi", () => {
    const [[, job]] = jobsOf("pulumi-stack.yml") as [[string, Json]];
    const steps: Json[] = job.steps;
    const configure = steps.findIndex((step) => step.env?.IMAGE_TAG === expression("inputs.image-tag"));
    const run = steps.findIndex((step) => step.uses?.startsWith("pulumi/actions@") && step.with?.command);
    expect(configure).toBeGreaterThan(-1);
    expect(configure).toBeLessThan(run);
    const script: string = steps[configure].run;
    expect(script).toContain('--plaintext "images.dispatcherTag=$IMAGE_TAG" --plaintext "images.trainerTag=$IMAGE_TAG"');
    expect(script).toContain(`digest=$(docker buildx imagetools inspect "$registry/$1:$IMAGE_TAG" --format '{{.Manifest.Digest}}')`);
    expect(script).toMatch(new RegExp(`^ *digest_of ${DISPATCHER_IMAGE_REPOSITORY}$`, "m"));
    expect(script).toMatch(/^ *digest_of "\$repository"$/m);
    expect(script).toContain('--path images.dispatcherDigest "$digest"');
    expect(script).toContain('node --input-type=module -e "$LIST_TRAINERS" | while read -r framework repository; do');
    expect(script).toContain('--path "images.trainerDigests.$framework" "$digest"');
    // The trainers it pins are the catalogue's, listed by the same code the step runs (Node 24, from stacks/).
    const listed = execFileSync(process.execPath, ["--input-type=module", "-e", steps[configure].env.LIST_TRAINERS], {
      cwd: "stacks",
      encoding: "utf8",
    });
    expect(listed.trim().split("\n")).toEqual(
      FRAMEWORKS.map((framework) => `${framework} ${FRAMEWORK_CATALOGUE[framework].imageRepository}`),
    );
    // The CLI exists before that step; the login lets it read a private package's digest.
    expect(steps.slice(0, configure).some((step) => step.uses?.startsWith("pulumi/actions@") && !step.with)).toBe(true);
    expect(steps.slice(0, configure).some((step) => step.uses?.startsWith("docker/login-action@"))).toBe(true);
    expect(job.permissions ?? workflow("pulumi-stack.yml").permissions).toMatchObject({ packages: "read" });
  });

  test("sets only image keys the stack config accepts: a cloud stack with them is valid, without them refused", () => {
    const [[, job]] = jobsOf("pulumi-stack.yml") as [[string, Json]];
    const script: string = job.steps.map((step: Json) => step.run ?? "").join("\n");
    const keys = [...new Set([...script.matchAll(/(?:--path |")images\.(\w+)/g)].map((match) => match[1] as string))].sort();
    expect(keys).toEqual(["dispatcherDigest", "dispatcherTag", "registry", "trainerDigests", "trainerTag"]);
    for (const stack of cloudStacks) {
      const { values } = withTestSecrets(readStackFile(`stacks/Pulumi.${stack}.yaml`));
      const raw = Object.fromEntries(Object.entries(values).map(([key, value]) => [key.slice("training-platform:".length), value]));
      const digest = `sha256:${"0".repeat(64)}`;
      const trainerDigests = Object.fromEntries(FRAMEWORKS.map((framework) => [framework, digest]));
      const set = { dispatcherTag: "0123abc", trainerTag: "0123abc", dispatcherDigest: digest, trainerDigests };
      const images = { ...JSON.parse(raw.images ?? "{}"), ...set };
      expect(
        validateStackConfig({ ...raw, images: JSON.stringify(images) }, () => true),
        stack,
      ).toMatchObject({ success: true });
      expect(
        validateStackConfig(raw, () => true),
        stack,
      ).toMatchObject({ success: false });
    }
  });

  test("the called workflow runs in the requested environment, one operation per stack at a time", () => {
    const [[, job]] = jobsOf("pulumi-stack.yml") as [[string, Json]];
    expect(job.environment).toBe(expression("inputs.environment"));
    expect(job.concurrency).toEqual({ group: `pulumi-${expression("inputs.stack")}`, "cancel-in-progress": false });
    const pulumiStep = job.steps.find((step: Json) => step.uses?.startsWith("pulumi/actions@") && step.with?.command);
    expect(pulumiStep.with).toMatchObject({
      command: expression("inputs.command"),
      "stack-name": expression("inputs.stack"),
      "work-dir": "stacks",
    });
  });
});
