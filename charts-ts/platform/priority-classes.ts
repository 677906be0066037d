import { k8s } from "cdk8s-plus-33";
import { Construct } from "constructs";
import { PRIORITIES, type Priority } from "../request.ts";
import { priorityClassName } from "../settings.ts";

const PRIORITY_CLASS_SPEC: Readonly<Record<Priority, { value: number; preemptionPolicy: string; description: string }>> = {
  high: {
    value: 1000,
    preemptionPolicy: "PreemptLowerPriority",
    description: "Deadline-bound training: may preempt default and low jobs.",
  },
  default: {
    value: 500,
    preemptionPolicy: "PreemptLowerPriority",
    description: "Ordinary training: may preempt low jobs.",
  },
  low: {
    value: 100,
    preemptionPolicy: "Never",
    description: "Best-effort training: waits for free GPUs and yields them when preempted (it resumes from its checkpoint).",
  },
};

/** The three training PriorityClasses a request's `priority` names. */
export class TrainingPriorityClasses extends Construct {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    for (const priority of PRIORITIES) {
      new k8s.KubePriorityClass(this, priority, {
        metadata: { name: priorityClassName(priority) },
        globalDefault: false,
        ...PRIORITY_CLASS_SPEC[priority],
      });
    }
  }
}
