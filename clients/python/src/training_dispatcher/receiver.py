"""The backend's side of the dispatcher's callbacks: ``POST .../jobs/{job_id}/status`` and ``.../logs``.

The dispatcher delivers each job's transitions in order and at least once: a call whose answer got
lost is sent again with the same ``sequence``. This receiver checks the token in constant time,
parses the body (a clear 400 naming the field when it is malformed), and applies each transition once
and in order per job; a redelivered call is acknowledged without being applied again.

Framework-free: ``CallbackReceiver.handle(kind, job_id, headers, body)`` returns (status, JSON body).
FastAPI: ``app.include_router(callback_router(receiver))``.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations at runtime.
import hashlib
import hmac
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from .models import Queue

#: The header the dispatcher sends its BACKEND_TOKEN in.
TOKEN_HEADER = "x-internal-token"  # noqa: S105 (a header name, not a secret)
#: The prefix of the dispatcher's own lines on the logs endpoint (the trainer's lines have none).
DISPATCHER_LINE_PREFIX = "dispatcher: "
CALLBACK_PREFIX = "/api/v1/internal/training"

log = logging.getLogger(__name__)

Phase = Literal["pending", "queued", "starting", "running", "retrying", "completed", "failed", "stopped"]


class StatusCallback(BaseModel):
    """A transition as the dispatcher posts it. Fields a newer dispatcher adds are kept, not refused."""

    model_config = ConfigDict(extra="allow", frozen=True)

    status: Phase
    reason: str
    message: str | None = None
    attempt: int | None = None
    exitCode: int | None = None
    #: While queued by Kueue: the LocalQueue, the 1-based position in it and the flavor waited for.
    queue: Queue | None = None
    at: str
    sequence: int


class LogCallback(BaseModel):
    """A log line: the trainer's own (log_message) or the dispatcher's line for a transition."""

    model_config = ConfigDict(extra="allow", frozen=True)

    message: str
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    #: Sent by dispatchers that number their lines; older ones are matched to the job's last transition.
    sequence: int | None = None


class CallbackError(Exception):
    """A refused call: ``status_code`` 400, 401, 404 or 413, in the dispatcher's own error shape."""

    def __init__(self, status_code: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


Kind = Literal["status", "logs"]
MAX_BODY_BYTES = 64 * 1024


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant time: both sides are hashed first, so neither timing nor length says anything about the token."""
    return hmac.compare_digest(_digest(presented or ""), _digest(expected)) and bool(presented)


def verify_and_parse(
    kind: str, job_id: str | int, headers: Mapping[str, str], body: bytes, token: str
) -> tuple[int, StatusCallback | LogCallback]:
    """Checks the token and parses one callback; raises CallbackError (401, 404 or 400 naming the field).

    ``headers`` may use any case for the header names."""
    presented = next((value for name, value in headers.items() if name.lower() == TOKEN_HEADER), None)
    if not token_matches(presented, token):
        raise CallbackError(401, "unauthorized", f"send the dispatcher's token in {TOKEN_HEADER}")
    if kind not in ("status", "logs"):
        raise CallbackError(404, "not_found", f"no callback endpoint {kind!r}; expected status or logs")
    try:
        job = int(job_id)
    except (TypeError, ValueError):
        raise CallbackError(400, "invalid_request", f"job_id must be a positive integer, got {job_id!r}", "job_id") from None
    if job <= 0:
        raise CallbackError(400, "invalid_request", f"job_id must be a positive integer, got {job}", "job_id")
    if len(body) > MAX_BODY_BYTES:
        raise CallbackError(413, "payload_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        parsed = json.loads(body)
    except ValueError:
        raise CallbackError(400, "invalid_request", "the body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise CallbackError(400, "invalid_request", "the body must be a JSON object")
    model = StatusCallback if kind == "status" else LogCallback
    try:
        return job, model.model_validate(parsed)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = "is required" if first["type"] == "missing" else first["msg"]
        raise CallbackError(400, "invalid_request", f"{field}: {message}" if field else message, field) from None


class SequenceStore(Protocol):
    """Where the receiver keeps, per job, the last status sequence it applied and the last sequence whose
    dispatcher log line it applied. A backend keeps them on its TrainingJob row, updated in the same
    transaction as the status itself, so a crash cannot apply a transition without recording it."""

    def applied(self, job_id: int) -> tuple[int, int]: ...

    def record(self, job_id: int, status_sequence: int, log_sequence: int) -> None: ...


class MemorySequenceStore:
    """SequenceStore in memory: for tests and single-process backends that rebuild state at start."""

    def __init__(self) -> None:
        self._applied: dict[int, tuple[int, int]] = {}

    def applied(self, job_id: int) -> tuple[int, int]:
        return self._applied.get(job_id, (0, 0))

    def record(self, job_id: int, status_sequence: int, log_sequence: int) -> None:
        self._applied[job_id] = (status_sequence, log_sequence)


@dataclass(frozen=True)
class Outcome:
    """What handling one call did: ``applied`` False for a redelivery (acknowledged, not applied)."""

    job_id: int
    kind: Kind
    applied: bool
    sequence: int | None


class CallbackReceiver:
    """Applies the dispatcher's callbacks once each, in order per job.

    ``on_status(job_id, callback)`` and ``on_log(job_id, callback)`` run under the job's lock, one call
    at a time per job; if one raises, nothing is recorded and the dispatcher's retry applies it again.
    """

    def __init__(
        self,
        token: str,
        on_status: Callable[[int, StatusCallback], None],
        on_log: Callable[[int, LogCallback], None] | None = None,
        store: SequenceStore | None = None,
    ) -> None:
        if not token:
            raise ValueError("token must not be empty: the receiver would accept anyone's callbacks")
        self._token = token
        self._on_status = on_status
        self._on_log = on_log
        self._store: SequenceStore = store or MemorySequenceStore()
        self._locks: dict[int, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        #: Redelivered calls acknowledged without being applied, per job.
        self.duplicates: Counter[int] = Counter()

    def __repr__(self) -> str:
        return "CallbackReceiver(token=<hidden>)"

    def _lock(self, job_id: int) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(job_id, threading.Lock())

    def handle(self, kind: str, job_id: str | int, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """One HTTP call in, (status code, JSON body) out: 200 applied or acknowledged, 4xx refused."""
        try:
            outcome = self.receive(kind, job_id, headers, body)
        except CallbackError as error:
            return error.status_code, error.body()
        return 200, {"applied": outcome.applied, "sequence": outcome.sequence}

    def receive(self, kind: str, job_id: str | int, headers: Mapping[str, str], body: bytes) -> Outcome:
        job, callback = verify_and_parse(kind, job_id, headers, body, self._token)
        with self._lock(job):
            status_sequence, log_sequence = self._store.applied(job)
            if isinstance(callback, StatusCallback):
                return self._status(job, callback, status_sequence, log_sequence)
            return self._log(job, callback, status_sequence, log_sequence)

    def _status(self, job: int, callback: StatusCallback, status_sequence: int, log_sequence: int) -> Outcome:
        if callback.sequence <= status_sequence:
            self.duplicates[job] += 1
            return Outcome(job, "status", False, callback.sequence)
        if callback.sequence != status_sequence + 1:
            # The dispatcher counts on without gaps, so this backend lost what it had recorded: apply the
            # newer state rather than wait for a transition that will not come again.
            log.warning("job %s: status callback %s follows %s; applying it", job, callback.sequence, status_sequence)
        self._on_status(job, callback)
        self._store.record(job, callback.sequence, log_sequence)
        return Outcome(job, "status", True, callback.sequence)

    def _log(self, job: int, callback: LogCallback, status_sequence: int, log_sequence: int) -> Outcome:
        # The dispatcher posts a transition's log line after its status and before the next status, so an
        # unnumbered dispatcher line belongs to the last status applied; the trainer's lines are all new.
        sequence = callback.sequence
        if sequence is None and callback.message.startswith(DISPATCHER_LINE_PREFIX):
            sequence = status_sequence
        if sequence is not None and sequence <= log_sequence:
            self.duplicates[job] += 1
            return Outcome(job, "logs", False, sequence)
        if self._on_log is not None:
            self._on_log(job, callback)
        if sequence is not None:
            self._store.record(job, status_sequence, sequence)
        return Outcome(job, "logs", True, sequence)


def callback_router(receiver: CallbackReceiver, prefix: str = CALLBACK_PREFIX) -> Any:
    """A FastAPI APIRouter serving ``{prefix}/jobs/{job_id}/status`` and ``.../logs`` (needs ``fastapi``)."""
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    router = APIRouter(prefix=prefix)

    async def endpoint(request: Request, job_id: str, kind: Kind) -> JSONResponse:
        body = await request.body()
        # The receiver's hooks are blocking (a database commit); keep them off the event loop.
        status, payload = await run_in_threadpool(receiver.handle, kind, job_id, dict(request.headers), body)
        return JSONResponse(payload, status_code=status)

    @router.post("/jobs/{job_id}/status", include_in_schema=False)
    async def status(request: Request, job_id: str) -> JSONResponse:
        return await endpoint(request, job_id, "status")

    @router.post("/jobs/{job_id}/logs", include_in_schema=False)
    async def logs(request: Request, job_id: str) -> JSONResponse:
        return await endpoint(request, job_id, "logs")

    return router
