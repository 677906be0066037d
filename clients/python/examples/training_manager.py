"""The plan's Phase 2 (TrainingManager, TrainingMonitor, the API endpoints' calls) on the dispatcher client.

What changes from the plan:
- no VMController: the dispatcher renders, submits, watches and stops the Job;
- `executor` per job, defaulting to DEFAULT_EXECUTOR ("kubernetes", or "local" for the plan's immediate
  rollback), and the job-level rollback: a job that failed on Kubernetes is retried on the local executor;
- no 10-second polling of Kubernetes jobs: the dispatcher pushes every transition to the callback
  receiver, which calls `apply_callback` once per transition, in order. Local runs are not watched by the
  dispatcher's live status, so `TrainingMonitor` asks for those.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from training_dispatcher import DispatcherClient, JobStatus
from training_dispatcher.plan import PlanStatus, error_message, plan_status
from training_dispatcher.receiver import StatusCallback

Executor = Literal["kubernetes", "local"]


@dataclass
class TrainingJob:
    """The backend's row (the plan's TrainingJob model), with what the dispatcher adds."""

    id: int
    project_id: int
    framework: str
    task_type: str
    model_name: str
    dataset_id: str
    dataset_format: str
    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 0.001
    num_classes: int | None = None
    advanced_config: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    gpu: int = 1
    executor: Executor | None = None
    # Written by the manager:
    execution_id: str | None = None
    executor_type: Executor | None = None
    status: PlanStatus = "pending"
    phase: str | None = None
    error_message: str | None = None
    #: The last callback sequence applied (the receiver's SequenceStore keeps it too).
    last_sequence: int = 0
    #: The failed Kubernetes run this one retries (the job-level rollback).
    retry_of: int | None = None


class TrainingManager:
    def __init__(self, dispatcher: DispatcherClient, default_executor: Executor | None = None) -> None:
        self.dispatcher = dispatcher
        # The plan's immediate rollback: DEFAULT_EXECUTOR=local sends every new job to the local executor.
        env_default = os.environ.get("DEFAULT_EXECUTOR", "kubernetes")
        self.default_executor: Executor = default_executor or (
            "local" if env_default in ("local", "subprocess") else "kubernetes"
        )

    def request_of(self, job: TrainingJob, executor: Executor) -> dict[str, Any]:
        request: dict[str, Any] = {
            "jobId": job.id,
            "projectId": job.project_id,
            "framework": job.framework,
            "taskType": job.task_type,
            "modelName": job.model_name,
            "dataset": {"path": job.dataset_id, "format": job.dataset_format},
            "epochs": job.epochs,
            "batchSize": job.batch_size,
            "learningRate": job.learning_rate,
            "advancedConfig": job.advanced_config,
            "resources": {"gpu": job.gpu},
            "labels": job.labels,
            "executor": executor,
        }
        if job.num_classes is not None:
            request["numClasses"] = job.num_classes
        return request

    def start_training(self, job: TrainingJob) -> str:
        """Submits the job (safe to call again: the dispatcher is idempotent on jobId); returns the execution id."""
        executor = job.executor or self.default_executor
        status = self.dispatcher.submit(self.request_of(job, executor)).job
        job.execution_id = status.name
        job.executor_type = status.executor
        self._apply(job, status.phase, status.reason, status.message, status.lastExitCode)
        return status.name

    def get_logs(self, job: TrainingJob, tail: int | None = None) -> str:
        return self.dispatcher.logs(job.id, tail=tail).text

    def stop(self, job: TrainingJob) -> None:
        """The plan deleted the Job; stopping keeps it (and its history) and lets the trainer checkpoint."""
        status = self.dispatcher.stop(job.id)
        self._apply(job, status.phase, status.reason, status.message, status.lastExitCode)

    def apply_callback(self, job: TrainingJob, callback: StatusCallback) -> None:
        """The receiver's on_status: one transition, applied once, in order."""
        job.last_sequence = callback.sequence
        self._apply(job, callback.status, callback.reason, callback.message, callback.exitCode)

    def refresh(self, job: TrainingJob) -> JobStatus:
        status = self.dispatcher.get(job.id)
        self._apply(job, status.phase, status.reason, status.message, status.lastExitCode)
        return status

    def retry_failed_on_local(self, job: TrainingJob, new_id: int) -> TrainingJob | None:
        """The plan's job-level rollback: a job that failed on Kubernetes runs again on the local executor.

        Unlike the plan's sketch, the retry is a new run with its own id (``new_id``, from the backend's
        own sequence): the dispatcher keeps the failed run, its history and logs, under the old id, and a
        jobId lives on one executor, so the same id cannot start again elsewhere."""
        if job.status != "failed" or job.executor_type != "kubernetes":
            return None
        retry = replace(
            job,
            id=new_id,
            executor="local",
            retry_of=job.id,
            execution_id=None,
            executor_type=None,
            status="pending",
            phase=None,
            error_message=None,
            last_sequence=0,
        )
        self.start_training(retry)
        return retry

    @staticmethod
    def _apply(job: TrainingJob, phase: str, reason: str, message: str | None, exit_code: int | None) -> None:
        job.phase = phase
        job.status = plan_status(phase)
        job.error_message = error_message(phase, reason, message, exit_code)


class TrainingMonitor:
    """The plan's monitor, reduced to what callbacks do not cover: local runs (no live status)."""

    def __init__(self, manager: TrainingManager) -> None:
        self.manager = manager

    def check_active_jobs(self, jobs: list[TrainingJob]) -> None:
        for job in jobs:
            if job.executor_type == "local" and job.status in ("pending", "running"):
                self.manager.refresh(job)
