// The API server's refusals of a Job's pod, as the Job controller's FailedCreate events and a dry run
// carry them: which wait (a full quota) and which can never be admitted (LimitRange, Pod Security).
import { describe, expect, it } from "vitest";
import { podRefusalOf } from "../../dispatcher/status/pod-admission.ts";

describe("podRefusalOf", () => {
  it.each([
    [
      'Error creating: pods "training-job-7-x8k2p" is forbidden: exceeded quota: training-quota, requested: requests.nvidia.com/gpu=8, used: requests.nvidia.com/gpu=16, limited: requests.nvidia.com/gpu=16',
      "QuotaExceeded",
      false,
    ],
    [
      'pods "training-job-7-" is forbidden: exceeded quota: training-quota, requested: requests.cpu=2,requests.nvidia.com/gpu=20, used: requests.cpu=0,requests.nvidia.com/gpu=0, limited: requests.cpu=64,requests.nvidia.com/gpu=16',
      "QuotaExceeded",
      false,
    ],
    [
      'Error creating: pods "training-job-7-ab1cd" is forbidden: maximum cpu usage per Container is 64, but limit is 100',
      "PodRejected",
      true,
    ],
    [
      '(combined from similar events): Error creating: pods "training-job-7-zz9zz" is forbidden: minimum memory usage per Container is 1Gi, but request is 512Mi',
      "PodRejected",
      true,
    ],
    [
      'Error creating: pods "training-job-7-q1w2e" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "trainer" must set securityContext.allowPrivilegeEscalation=false)',
      "PodRejected",
      true,
    ],
    [
      'Error creating: Internal error occurred: failed calling webhook "policy.example.com": context deadline exceeded',
      "PodRejected",
      false,
    ],
  ])("%s", (message, reason, permanent) => {
    const refusal = podRefusalOf(message);
    expect(refusal).toMatchObject({ reason, permanent });
    // The generated pod name changes with every try; the words kept do not.
    expect(refusal.message).not.toMatch(/training-job-7-/);
  });
});
