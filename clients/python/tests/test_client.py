"""The client against the real dispatcher on the real control plane: submit, idempotency, 409, dry run,
get, list paging, logs, follow, stop, typed errors, retries only where safe, the token kept out of logs."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from backend import free_port
from conftest import REPO, Cluster, Dispatcher, new_job_id, running_dispatcher, training_request, wait_for
from proxy import CuttableProxy
from training_dispatcher import (
    ConflictError,
    DispatcherClient,
    DispatcherUnreachableError,
    IncompleteListError,
    InvalidRequestError,
    NotFoundError,
    RetryPolicy,
    UnauthorizedError,
)
from training_dispatcher.models import TrainingRequest

TRAINER_LOG = [line.split(" ", 3)[3] for line in (REPO / "test/cluster/trainer.log").read_text().splitlines()]


def test_submit_returns_the_job_and_says_it_was_created(client: DispatcherClient) -> None:
    job_id = new_job_id()
    submission = client.submit(training_request(job_id))
    assert submission.created is True
    assert submission.job.jobId == job_id
    assert submission.job.name == f"training-job-{job_id}"
    assert submission.job.executor == "kubernetes"
    assert submission.job.phase == "pending"

    done = wait_for("completed", lambda: (job := client.get(job_id)).phase == "completed" and job)
    assert done.reason == "Succeeded"
    assert done.lastExitCode == 0
    assert done.transitions[0].phase == "pending"
    assert done.transitions[-1].phase == "completed"


def test_submit_accepts_the_generated_model(client: DispatcherClient) -> None:
    job_id = new_job_id()
    request = TrainingRequest.model_validate(training_request(job_id))
    assert client.submit(request).job.jobId == job_id


def test_an_identical_submit_returns_the_existing_job_and_a_different_one_raises_conflict(client: DispatcherClient) -> None:
    job_id = new_job_id()
    assert client.submit(training_request(job_id)).created is True
    again = client.submit(training_request(job_id))
    assert again.created is False
    assert again.job.jobId == job_id

    with pytest.raises(ConflictError) as conflict:
        client.submit({**training_request(job_id), "epochs": 30, "modelName": "resnet50"})
    assert conflict.value.status_code == 409
    assert conflict.value.code == "conflict"
    assert conflict.value.fields == ["epochs", "modelName"]
    assert conflict.value.field == "epochs"


def test_a_bad_request_raises_a_typed_error_naming_the_field_and_creates_nothing(client: DispatcherClient) -> None:
    job_id = new_job_id()
    with pytest.raises(InvalidRequestError) as invalid:
        client.submit({**training_request(job_id), "epochs": -1})
    assert invalid.value.status_code == 400
    assert invalid.value.code == "invalid_request"
    assert invalid.value.field == "epochs"
    assert "positive" in invalid.value.message

    with pytest.raises(InvalidRequestError) as unknown:
        client.submit({**training_request(job_id), "epoch": 3})
    assert unknown.value.field == "epoch"

    with pytest.raises(NotFoundError) as missing:
        client.get(job_id)
    assert missing.value.code == "not_found"


def test_dry_run_returns_the_manifest_and_the_verdict_and_creates_nothing(client: DispatcherClient) -> None:
    job_id = new_job_id()
    dry = client.dry_run(training_request(job_id))
    assert dry.verdict.accepted is True
    assert dry.manifest["kind"] == "Job"
    assert dry.manifest["metadata"]["name"] == f"training-job-{job_id}"
    with pytest.raises(NotFoundError):
        client.get(job_id)


def test_a_wrong_token_raises_unauthorized(dispatcher: Dispatcher) -> None:
    with DispatcherClient(dispatcher.url, "not-the-token") as wrong, pytest.raises(UnauthorizedError) as refused:
        wrong.get(1)
    assert refused.value.status_code == 401


def test_list_walks_every_page_with_the_filters(client: DispatcherClient, dispatcher: Dispatcher) -> None:
    project = new_job_id() % 10**6 + 1
    ids = [new_job_id() for _ in range(5)]
    for job_id in ids:
        client.submit(training_request(job_id, project_id=project))

    # The dispatcher pages (limit 2 leaves a nextPageToken), and list() follows every page.
    first_page = httpx.get(
        f"{dispatcher.url}/v1/jobs",
        params={"projectId": project, "limit": 2},
        headers={"authorization": f"Bearer {dispatcher.token}"},
    ).json()
    assert len(first_page["jobs"]) == 2
    assert first_page["nextPageToken"]
    listed = [job.jobId for job in client.list(project_id=project, page_size=2)]
    assert sorted(listed) == sorted(ids)

    wait_for("all completed", lambda: all(client.get(job_id).phase == "completed" for job_id in ids))
    assert sorted(job.jobId for job in client.list(project_id=project, phase="completed", page_size=2)) == sorted(ids)
    assert list(client.list(project_id=project, phase="running")) == []
    assert list(client.list(project_id=project, framework="ultralytics")) == []


def test_a_list_missing_an_executor_yields_what_it_has_then_says_so(cluster: Cluster, tmp_path: Path) -> None:
    job_id = new_job_id()
    with running_dispatcher(tmp_path, cluster.kubeconfig) as up, DispatcherClient(up.url, up.token) as client:
        client.submit(training_request(job_id, executor="local"))
    # The same local history, now with a Kubernetes API that does not answer (a closed port).
    unreachable = tmp_path / "kubeconfig"
    unreachable.write_text(
        re.sub(r"server: https://\S+", f"server: https://127.0.0.1:{free_port()}", cluster.kubeconfig.read_text())
    )
    with running_dispatcher(tmp_path, unreachable, ready="/healthz") as down, DispatcherClient(down.url, down.token) as client:
        jobs = []
        with pytest.raises(IncompleteListError) as incomplete:
            for job in client.list():
                jobs.append(job.jobId)
        assert jobs == [job_id]
        assert list(incomplete.value.executors) == ["kubernetes"]


def test_logs_returns_the_tail_of_the_latest_attempt(client: DispatcherClient) -> None:
    job_id = new_job_id()
    client.submit(training_request(job_id))
    wait_for("completed", lambda: client.get(job_id).phase == "completed")
    logs = client.logs(job_id, tail=2)
    assert logs.state == "output"
    assert logs.attempt == 1
    assert logs.text.splitlines() == TRAINER_LOG[-2:]
    assert client.logs(job_id).text.splitlines() == TRAINER_LOG


def test_logs_of_a_job_that_has_not_started_say_so(client: DispatcherClient) -> None:
    job_id = new_job_id()
    # No node has this GPU type and no pool is declared: the job waits, queued.
    client.submit({**training_request(job_id), "resources": {"gpu": 1, "gpuType": "h100"}})
    wait_for("queued", lambda: client.get(job_id).phase == "queued")
    logs = client.logs(job_id)
    assert (logs.text, logs.state, logs.phase, logs.attempt) == ("", "no-output-yet", "queued", None)
    client.stop(job_id)


def test_follow_logs_waits_for_the_start_and_ends_when_the_attempt_ends(client: DispatcherClient) -> None:
    job_id = new_job_id()
    client.submit(training_request(job_id, kwok_run_duration="3s"))
    # Followed from submission on: nothing to read yet, then the whole log, then the end of the attempt
    # (kwok's own log stream never ends: the client ends it on the job's transition).
    assert list(client.follow_logs(job_id)) == TRAINER_LOG
    assert client.get(job_id).phase == "completed"


def test_follow_logs_of_a_local_job_ends_with_the_run(client: DispatcherClient) -> None:
    job_id = new_job_id()
    client.submit(training_request(job_id, executor="local"))
    lines = list(client.follow_logs(job_id))
    assert any("epoch 3/3" in line for line in lines), lines
    assert client.get(job_id).phase == "completed"


def test_stop_stops_a_running_job_and_a_finished_one_raises_conflict(client: DispatcherClient) -> None:
    job_id = new_job_id()
    client.submit(training_request(job_id, kwok_run_duration="10m"))
    wait_for("running", lambda: client.get(job_id).phase == "running")
    stopped = client.stop(job_id)
    assert stopped.phase == "stopped"
    assert stopped.reason == "StoppedByUser"
    assert client.stop(job_id).phase == "stopped"

    finished = new_job_id()
    client.submit(training_request(finished))
    wait_for("completed", lambda: client.get(finished).phase == "completed")
    with pytest.raises(ConflictError) as conflict:
        client.stop(finished)
    assert conflict.value.fields == []
    with pytest.raises(NotFoundError):
        client.stop(new_job_id())


def test_safe_calls_are_retried_after_a_dropped_connection_and_stop_is_not(dispatcher: Dispatcher) -> None:
    proxy = CuttableProxy(int(dispatcher.url.rsplit(":", 1)[1]))
    retry = RetryPolicy(attempts=4, backoff=0.05, max_backoff=0.2)
    try:
        with DispatcherClient(proxy.url, dispatcher.token, retry=retry) as client:
            job_id = new_job_id()
            proxy.drop_next(2)
            assert client.submit(training_request(job_id, kwok_run_duration="10m")).job.jobId == job_id
            assert proxy.dropped == 2
            proxy.drop_next(3)
            assert client.get(job_id).jobId == job_id
            assert proxy.dropped == 5

            proxy.drop_next(1)
            with pytest.raises(DispatcherUnreachableError):
                client.stop(job_id)
            assert proxy.dropped == 6
            assert client.get(job_id).phase != "stopped"

            proxy.drop_next(4)
            with pytest.raises(DispatcherUnreachableError):
                client.get(job_id)
            assert proxy.dropped == 10
            client.stop(job_id)
    finally:
        proxy.close()


def test_the_token_appears_in_no_log_line_repr_or_error(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    with DispatcherClient(dispatcher.url, dispatcher.token, retry=RetryPolicy(attempts=2, backoff=0.01)) as client:
        job_id = new_job_id()
        client.submit(training_request(job_id))
        errors = []
        for call in (lambda: client.get(new_job_id()), lambda: client.submit({"jobId": -1})):
            with pytest.raises(Exception) as raised:
                call()
            errors.append(f"{raised.value!r} {raised.value} {raised.value.__dict__}")
        text = f"{caplog.text} {client!r} {errors}"
    assert "HTTP Request" in caplog.text  # httpx did log at DEBUG/INFO: the check below is not vacuous
    assert dispatcher.token not in text


def test_a_client_nobody_closed_does_not_keep_the_interpreter_alive(dispatcher: Dispatcher) -> None:
    script = (
        "from training_dispatcher import DispatcherClient\n"
        f"client = DispatcherClient({dispatcher.url!r}, {dispatcher.token!r})\n"
        "jobs = client.list(page_size=1)\n"
        "next(jobs, None)  # an iterator left open too\n"
        "print('made')\n"
    )
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "made"
