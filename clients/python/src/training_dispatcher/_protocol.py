"""What both clients share and that does no I/O: calls, retry decisions, results, the SSE decoder
and the event cursor that makes a resumed stream yield each event once."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from .models import JobStatus, TransitionEvent

PHASE = Literal["pending", "queued", "starting", "running", "retrying", "completed", "failed", "stopped"]
TERMINAL_PHASES: frozenset[str] = frozenset({"completed", "failed", "stopped"})
# Answers a safe call may get again: the dispatcher (or its proxy) was briefly unable, not the request wrong.
RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 500, 502, 503, 504})


@dataclass(frozen=True)
class Call:
    method: Literal["GET", "POST"]
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    #: GETs and the idempotent submit: sending it twice has the effect of sending it once.
    retry_safe: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, for safe calls only."""

    #: Tries in all, the first included. @default 4
    attempts: int = 4
    #: Seconds before the first retry (upper bound of its jitter). @default 0.25
    backoff: float = 0.25
    #: @default 5.0
    max_backoff: float = 5.0

    def delay(self, failures: int) -> float:
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**failures))

    def next_delay(self, call: Call, failures: int, status_code: int | None) -> float | None:
        """Seconds to wait before trying `call` again after its `failures`-th failure; None: give up.
        ``status_code`` None means no answer came (connection refused, reset, timed out)."""
        if not call.retry_safe or failures >= self.attempts:
            return None
        if status_code is not None and status_code not in RETRYABLE_STATUSES:
            return None
        return self.delay(failures - 1)


def request_body(request: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of a training request given as a generated model or a plain mapping."""
    if isinstance(request, BaseModel):
        dumped = request.model_dump(mode="json", exclude_none=True)
        if not isinstance(dumped, dict):
            raise TypeError("a training request must be a JSON object")
        return dumped
    return dict(request)


def submit_call(request: BaseModel | Mapping[str, Any], dry_run: bool = False) -> Call:
    return Call("POST", "/v1/jobs", {"dryRun": "true"} if dry_run else {}, request_body(request), retry_safe=True)


def query(**values: object) -> dict[str, str]:
    """Query parameters: None left out, booleans as the dispatcher spells them."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


@dataclass(frozen=True)
class Submission:
    """What a submit answered: the job, and whether this call created it (201) or found it (200)."""

    job: JobStatus
    created: bool


@dataclass(frozen=True)
class Logs:
    """A log answer. ``state`` is the dispatcher's x-log-state: ``output``, ``no-output-yet`` (the
    attempt has not produced any yet; ``phase`` says where the job is), or a state a newer dispatcher adds."""

    text: str
    state: str
    attempt: int | None = None
    phase: str | None = None

    @classmethod
    def from_headers(cls, text: str, headers: Mapping[str, str]) -> Logs:
        attempt = headers.get("x-log-attempt")
        return cls(
            text=text,
            state=headers.get("x-log-state", "output"),
            attempt=int(attempt) if attempt and attempt.isdigit() else None,
            phase=headers.get("x-job-phase"),
        )


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event: its stream id (what Last-Event-ID resumes from) and its data, the
    dispatcher's TransitionEvent (the job, its sequence number, as the status callback carries it, and
    the transition)."""

    id: str
    data: TransitionEvent

    @property
    def job_id(self) -> int:
        return self.data.jobId

    @property
    def sequence(self) -> int:
        return self.data.sequence

    @property
    def phase(self) -> str:
        return self.data.phase

    @property
    def terminal(self) -> bool:
        return self.data.phase in TERMINAL_PHASES


@dataclass(frozen=True)
class RawEvent:
    id: str | None
    event: str
    data: str


class SSEDecoder:
    """The text/event-stream format, one line at a time (the WHATWG rules this dispatcher needs:
    comments, id, event, multi-line data, a blank line dispatches)."""

    def __init__(self) -> None:
        self._id: str | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> RawEvent | None:
        line = line.rstrip("\r\n")
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = RawEvent(self._id, self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id" and "\0" not in value:
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


class EventCursor:
    """Where a stream stands: the id to resume from, and the last sequence yielded per job, so an event
    that a reconnection delivers again is never yielded twice."""

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self._sequences: dict[int, int] = {}

    def accept(self, raw: RawEvent) -> StreamEvent | None:
        if raw.event != "transition":
            return None
        data = TransitionEvent.model_validate_json(raw.data)
        if raw.id is not None:
            self.last_event_id = raw.id
        if data.sequence <= self._sequences.get(data.jobId, 0):
            return None
        self._sequences[data.jobId] = data.sequence
        return StreamEvent(raw.id or f"{data.jobId}-{data.sequence}", data)


def ends_attempt(event: StreamEvent, attempt: int) -> bool:
    """Whether `event` says attempt `attempt` is over: the job finished, the attempt failed into a
    retry, or a later attempt began."""
    if event.terminal:
        return True
    number = event.data.attempt
    if number is None:
        return False
    return number > attempt or (number == attempt and event.phase == "retrying")
