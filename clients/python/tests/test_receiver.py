"""The callback receiver: fed by the real dispatcher through a backend outage, and refusing what it must
refuse, over real HTTP (the FastAPI router behind uvicorn)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from backend import RecordingBackend
from conftest import Dispatcher, in_order_within, new_job_id, training_request, wait_for
from training_dispatcher import DispatcherClient
from training_dispatcher.receiver import CallbackError, CallbackReceiver, LogCallback, StatusCallback, verify_and_parse


def test_a_backend_outage_loses_nothing_and_applies_each_transition_once(
    client: DispatcherClient, backend: RecordingBackend, dispatcher: Dispatcher
) -> None:
    job_id = new_job_id()
    backend.outage = "down"
    refused_before = backend.refused
    try:
        client.submit(training_request(job_id))
        final = wait_for("completed", lambda: (job := client.get(job_id)).phase == "completed" and job)
        wait_for("the dispatcher retrying", lambda: backend.refused > refused_before + 2)
        assert backend.statuses[job_id] == []

        # The backend comes back but its answers get lost: it applies, the dispatcher sees 502 and sends again.
        backend.outage = "lost-ack"
        wait_for("a transition applied while answers were lost", lambda: len(backend.statuses[job_id]) >= 1)
        wait_for("a redelivery", lambda: backend.receiver.duplicates[job_id] >= 1)
    finally:
        backend.outage = "none"

    def delivered() -> bool:
        statuses, lines = backend.statuses[job_id], backend.lines[job_id]
        return bool(statuses) and statuses[-1].status == "completed" and len(lines) == len(statuses)

    wait_for("every transition and its log line", delivered)
    applied = backend.statuses[job_id]
    assert [callback.sequence for callback in applied] == list(range(1, len(applied) + 1))
    assert in_order_within([t.phase for t in final.transitions], [callback.status for callback in applied])
    assert datetime.fromisoformat(applied[-1].at) == final.transitions[-1].at
    assert [line.message.split(",")[0] for line in backend.lines[job_id]] == [
        f"dispatcher: {callback.status}" + (f" (attempt {callback.attempt})" if callback.attempt else "") for callback in applied
    ]


def _post(backend: RecordingBackend, path: str, body: object, token: str | None) -> httpx.Response:
    headers = {"x-internal-token": token} if token is not None else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{backend.url}/api/v1/internal/training/jobs/{path}", content=content, headers=headers)


def test_the_receiver_refuses_a_wrong_token_and_a_malformed_body_naming_the_field(backend: RecordingBackend) -> None:
    job_id = new_job_id()
    good = {"status": "running", "reason": "Started", "at": "2026-01-01T00:00:00Z", "sequence": 1}
    assert _post(backend, f"{job_id}/status", good, None).status_code == 401
    assert _post(backend, f"{job_id}/status", good, "wrong").status_code == 401
    assert backend.statuses[job_id] == []

    missing = _post(backend, f"{job_id}/status", {k: v for k, v in good.items() if k != "sequence"}, backend.token)
    assert missing.status_code == 400
    assert missing.json()["error"] == {"code": "invalid_request", "message": "sequence: is required", "field": "sequence"}
    bad_phase = _post(backend, f"{job_id}/status", {**good, "status": "exploded"}, backend.token)
    assert bad_phase.status_code == 400
    assert bad_phase.json()["error"]["field"] == "status"
    assert (
        _post(backend, f"{job_id}/status", b"{not json", backend.token).json()["error"]["message"] == "the body is not valid JSON"
    )
    assert _post(backend, "abc/status", good, backend.token).json()["error"]["field"] == "job_id"
    assert _post(backend, f"{job_id}/logs", {"level": "INFO"}, backend.token).json()["error"]["field"] == "message"
    assert backend.statuses[job_id] == []

    first = _post(backend, f"{job_id}/status", good, backend.token)
    assert first.json() == {"applied": True, "sequence": 1}
    again = _post(backend, f"{job_id}/status", good, backend.token)
    assert again.status_code == 200
    assert again.json() == {"applied": False, "sequence": 1}
    assert [callback.sequence for callback in backend.statuses[job_id]] == [1]


def test_log_lines_the_dispatcher_sends_again_are_applied_once_and_the_trainers_lines_always() -> None:
    applied: list[str] = []
    receiver = CallbackReceiver(
        "token", on_status=lambda job, callback: None, on_log=lambda job, line: applied.append(line.message)
    )
    headers = {"X-Internal-Token": "token"}
    status = json.dumps({"status": "running", "reason": "Started", "at": "2026-01-01T00:00:00Z", "sequence": 1}).encode()
    line = json.dumps({"message": "dispatcher: running (attempt 1), Started", "level": "INFO"}).encode()
    trainer = json.dumps({"message": "epoch 1/3", "level": "INFO"}).encode()
    assert receiver.handle("status", 5, headers, status)[0] == 200
    assert receiver.handle("logs", 5, headers, line) == (200, {"applied": True, "sequence": 1})
    assert receiver.handle("logs", 5, headers, line) == (200, {"applied": False, "sequence": 1})
    assert receiver.handle("logs", 5, headers, trainer)[1]["applied"] is True
    assert receiver.handle("logs", 5, headers, trainer)[1]["applied"] is True
    assert applied == ["dispatcher: running (attempt 1), Started", "epoch 1/3", "epoch 1/3"]


def test_a_failing_hook_records_nothing_so_the_redelivery_applies_it() -> None:
    calls: list[int] = []

    def flaky(job: int, callback: StatusCallback) -> None:
        calls.append(callback.sequence)
        if len(calls) == 1:
            raise RuntimeError("database unavailable")

    receiver = CallbackReceiver("token", on_status=flaky)
    body = json.dumps({"status": "pending", "reason": "Created", "at": "2026-01-01T00:00:00Z", "sequence": 1}).encode()
    with pytest.raises(RuntimeError):
        receiver.handle("status", 9, {"x-internal-token": "token"}, body)
    assert receiver.handle("status", 9, {"x-internal-token": "token"}, body) == (200, {"applied": True, "sequence": 1})
    assert calls == [1, 1]


def test_a_queued_status_carries_kueues_queue_and_an_older_one_none() -> None:
    body = {
        "status": "queued",
        "reason": "WaitingForQuota",
        "message": "insufficient unused quota for nvidia.com/gpu in flavor gpu-t4, 8 more needed",
        "queue": {"name": "project-2", "position": 2, "flavor": "gpu-t4"},
        "at": "2026-01-01T00:00:00Z",
        "sequence": 3,
    }
    _, queued = verify_and_parse("status", "7", {"x-internal-token": "t"}, json.dumps(body).encode(), "t")
    assert isinstance(queued, StatusCallback)
    assert queued.queue is not None
    assert (queued.queue.name, queued.queue.position, queued.queue.flavor) == ("project-2", 2, "gpu-t4")
    _, running = verify_and_parse(
        "status", "7", {"x-internal-token": "t"}, json.dumps({**body, "status": "running", "queue": None}).encode(), "t"
    )
    assert isinstance(running, StatusCallback) and running.queue is None
    with pytest.raises(CallbackError) as refused:
        verify_and_parse("status", "7", {"x-internal-token": "t"}, json.dumps({**body, "queue": {"position": 0}}).encode(), "t")
    assert refused.value.field is not None and refused.value.field.startswith("queue")


def test_verify_and_parse_serves_other_frameworks() -> None:
    body = json.dumps({"message": "hello", "level": "WARNING"}).encode()
    job, parsed = verify_and_parse("logs", "12", {"x-internal-token": "t"}, body, "t")
    assert job == 12
    assert parsed == LogCallback(message="hello", level="WARNING")
    with pytest.raises(Exception) as refused:
        verify_and_parse("logs", "12", {"x-internal-token": "u"}, body, "t")
    assert getattr(refused.value, "status_code", None) == 401


def test_concurrent_redeliveries_of_one_transition_are_applied_once(backend: RecordingBackend) -> None:
    job_id = new_job_id()
    body = {"status": "pending", "reason": "Created", "at": "2026-01-01T00:00:00Z", "sequence": 1}

    def deliver(_: int) -> int:
        return _post(backend, f"{job_id}/status", body, backend.token).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(deliver, range(16)))
    assert codes == [200] * 16
    assert [callback.sequence for callback in backend.statuses[job_id]] == [1]
    assert backend.receiver.duplicates[job_id] == 15
