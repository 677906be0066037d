"""The plan's Phase 2 flow on the client (examples/training_manager.py), end to end against the real
dispatcher: callbacks drive the backend's rows, the per-job executor, and both rollbacks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend import RecordingBackend
from conftest import RUN, new_job_id, wait_for
from training_dispatcher import DispatcherClient
from training_dispatcher.plan import plan_status

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from training_manager import TrainingJob, TrainingManager, TrainingMonitor


def row(**overrides: object) -> TrainingJob:
    values: dict[str, object] = {
        "id": new_job_id(),
        "project_id": 5,
        "framework": "ultralytics",
        "task_type": "object_detection",
        "model_name": "yolo11n",
        "dataset_id": "abc123",
        "dataset_format": "yolo",
        "epochs": 3,
        "advanced_config": {"smoke": {"epoch_seconds": 0.3}},
        "labels": {"test-run": RUN},
    }
    return TrainingJob(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture()
def manager(client: DispatcherClient, backend: RecordingBackend) -> Iterator[TrainingManager]:
    manager = TrainingManager(client, default_executor="kubernetes")
    yield manager
    backend.listeners.clear()


def follow_callbacks(backend: RecordingBackend, manager: TrainingManager, job: TrainingJob) -> None:
    """What the backend's on_status does: the receiver hands each transition to the manager, once, in order."""
    backend.listeners[job.id] = lambda _job_id, callback: manager.apply_callback(job, callback)


def test_start_training_on_kubernetes_then_callbacks_complete_the_row(
    manager: TrainingManager, backend: RecordingBackend
) -> None:
    job = row()
    follow_callbacks(backend, manager, job)
    assert manager.start_training(job) == f"training-job-{job.id}"
    assert job.executor_type == "kubernetes"
    # Starting again (a retried HTTP request of the backend's own API) is harmless: same job.
    assert manager.start_training(job) == f"training-job-{job.id}"

    wait_for("the row completed by callbacks", lambda: job.status == "completed")
    assert job.error_message is None
    assert job.last_sequence == len(backend.statuses[job.id])
    assert "epoch 3/3" in manager.get_logs(job)


def test_stop_marks_the_row_stopped(manager: TrainingManager, backend: RecordingBackend) -> None:
    job = row(labels={"test-run": RUN, "kwok-run-duration": "10m"})
    follow_callbacks(backend, manager, job)
    manager.start_training(job)
    wait_for("running", lambda: job.status == "running")
    manager.stop(job)
    assert job.status == "stopped"
    wait_for("the stopped callback", lambda: job.phase == "stopped" and job.last_sequence > 0)


def test_a_job_failed_on_kubernetes_is_retried_on_the_local_executor(manager: TrainingManager, backend: RecordingBackend) -> None:
    # Exit code 3: the trainer's configuration error, failed at once by the podFailurePolicy.
    job = row(labels={"test-run": RUN, "kwok-fate": "fail", "kwok-exit-code": "3"})
    follow_callbacks(backend, manager, job)
    manager.start_training(job)
    wait_for("failed on kubernetes", lambda: job.status == "failed")
    assert job.error_message is not None and "ConfigurationError" in job.error_message

    retry = manager.retry_failed_on_local(job, new_id=new_job_id())
    assert retry is not None
    assert (retry.retry_of, retry.executor_type, retry.status) == (job.id, "local", "pending")
    monitor = TrainingMonitor(manager)
    wait_for("completed on the local executor", lambda: monitor.check_active_jobs([retry]) or retry.status == "completed")
    assert manager.dispatcher.get(retry.id).executor == "local"
    assert "epoch 3/3" in manager.get_logs(retry)
    # The failed run keeps its history; a completed one is not retried.
    assert manager.dispatcher.get(job.id).phase == "failed"
    assert manager.retry_failed_on_local(retry, new_id=new_job_id()) is None


def test_default_executor_local_is_the_immediate_rollback(client: DispatcherClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_EXECUTOR", "subprocess")
    manager = TrainingManager(client)
    job = row()
    manager.start_training(job)
    assert job.executor_type == "local"
    wait_for("completed locally", lambda: TrainingMonitor(manager).check_active_jobs([job]) or job.status == "completed")


def test_every_phase_maps_onto_the_plans_columns() -> None:
    assert {phase: plan_status(phase) for phase in ("pending", "queued", "starting", "running", "retrying")} == {
        "pending": "pending",
        "queued": "pending",
        "starting": "pending",
        "running": "running",
        "retrying": "running",
    }
    assert [plan_status(phase) for phase in ("completed", "failed", "stopped")] == ["completed", "failed", "stopped"]
    with pytest.raises(ValueError, match="unknown dispatcher phase 'exploded'"):
        plan_status("exploded")
