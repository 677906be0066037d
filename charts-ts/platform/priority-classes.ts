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

/** The value of each priority, for the PriorityClasses and Kueue's WorkloadPriorityClasses alike. */
export function priorityValue(priority: Priority): number {
  return PRIORITY_CLASS_SPEC[priority].value;
}

export interface TrainingPriorityClassesProps {
  /**
   * Kueue queues training Jobs and preempts among them by the WorkloadPriorityClasses
   * of the same names (TrainingQueues). The scheduler's preemption would reach every
   * pod without a PriorityClass (value 0: the backend, MLflow, ...), so with queueing
   * every class gets `preemptionPolicy: Never`; the value still orders the scheduler's queue.
   * @default false
   */
  readonly queueing?: boolean;
}

/** The three training PriorityClasses a request's `priority` names. */
export class TrainingPriorityClasses extends Construct {
  constructor(scope: Construct, id: string, props: TrainingPriorityClassesProps = {}) {
    super(scope, id);
    for (const priority of PRIORITIES) {
      const spec = PRIORITY_CLASS_SPEC[priority];
      new k8s.KubePriorityClass(this, priority, {
        metadata: { name: priorityClassName(priority) },
        globalDefault: false,
        ...spec,
        ...(props.queueing && {
          preemptionPolicy: "Never",
          description: `${spec.description} Preemption is Kueue's, among training workloads only.`,
        }),
      });
    }
  }
}
