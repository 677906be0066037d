"""The asynchronous client (httpx + asyncio): the one implementation; DispatcherClient wraps it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from pydantic import BaseModel

from . import __version__
from ._protocol import (
    TERMINAL_PHASES,
    Call,
    EventCursor,
    Logs,
    RetryPolicy,
    SSEDecoder,
    StreamEvent,
    Submission,
    ends_attempt,
    query,
    submit_call,
)
from .errors import DispatcherError, DispatcherUnreachableError, IncompleteListError, NotFoundError, error_from_response
from .models import DryRunResult, JobPage, JobStatus

#: The dispatcher sends a keep-alive comment every 15 s; a stream silent for this long is dead.
STREAM_READ_TIMEOUT = 45.0


class AsyncDispatcherClient:
    """Calls the training dispatcher. Use as ``async with AsyncDispatcherClient(url, token) as client``.

    Every call has a timeout; safe calls (GETs, the idempotent submit and dry run) are retried with
    jittered backoff on connection failures and 500/502/503/504. The token is sent as a bearer header
    and appears in no repr, log line or exception.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        stream_read_timeout: float = STREAM_READ_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not token:
            raise ValueError("token must not be empty: the dispatcher answers 401 to every /v1 call without one")
        self.base_url = base_url.rstrip("/")
        self._retry = retry or RetryPolicy()
        self._timeout = httpx.Timeout(timeout)
        self._stream_timeout = httpx.Timeout(timeout, read=stream_read_timeout)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {token}", "user-agent": f"training-dispatcher-python/{__version__}"},
            timeout=self._timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"AsyncDispatcherClient({self.base_url!r})"

    async def __aenter__(self) -> AsyncDispatcherClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call) -> httpx.Response:
        failures = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, params=call.params, json=call.body)
            except httpx.TransportError as error:
                failures += 1
                delay = self._retry.next_delay(call, failures, None)
                if delay is None:
                    raise DispatcherUnreachableError(f"{call.method} {call.path}: {type(error).__name__}: {error}") from None
            else:
                if response.status_code < 400:
                    return response
                failures += 1
                delay = self._retry.next_delay(call, failures, response.status_code)
                if delay is None:
                    raise error_from_response(response.status_code, response.content)
            await asyncio.sleep(delay)

    @contextlib.asynccontextmanager
    async def _stream(self, call: Call, headers: Mapping[str, str] | None = None) -> AsyncIterator[httpx.Response]:
        try:
            request = self._http.build_request(
                call.method, call.path, params=call.params, headers=headers, timeout=self._stream_timeout
            )
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as error:
            raise DispatcherUnreachableError(f"{call.method} {call.path}: {type(error).__name__}: {error}") from None
        try:
            if response.status_code >= 400:
                raise error_from_response(response.status_code, await response.aread())
            yield response
        finally:
            await response.aclose()

    async def submit(self, request: BaseModel | Mapping[str, Any]) -> Submission:
        """Creates the job (``created``), or returns the existing one when an identical request already
        did. A different request under the same jobId raises ConflictError naming the differing fields."""
        response = await self._send(submit_call(request))
        return Submission(JobStatus.model_validate(response.json()), created=response.status_code == 201)

    async def dry_run(self, request: BaseModel | Mapping[str, Any]) -> DryRunResult:
        """The manifest and the Kubernetes API server's verdict (admission, validation, quota); creates nothing."""
        return DryRunResult.model_validate((await self._send(submit_call(request, dry_run=True))).json())

    async def get(self, job_id: int) -> JobStatus:
        response = await self._send(Call("GET", f"/v1/jobs/{int(job_id)}", retry_safe=True))
        return JobStatus.model_validate(response.json())

    async def list(
        self,
        *,
        project_id: int | None = None,
        framework: str | None = None,
        phase: str | None = None,
        executor: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[JobStatus]:
        """Every job that matches, page after page (the dispatcher's pageToken followed to the end).

        When an executor could not answer (the Kubernetes API is down), the jobs the others hold are
        yielded, then IncompleteListError says which executor is missing: a partial list never passes
        for a whole one."""
        token: str | None = None
        missing: dict[str, str] = {}
        while True:
            params = query(
                projectId=project_id, framework=framework, phase=phase, executor=executor, limit=page_size, pageToken=token
            )
            page = JobPage.model_validate((await self._send(Call("GET", "/v1/jobs", params, retry_safe=True))).json())
            for job in page.jobs:
                yield job
            missing.update({unavailable.executor: unavailable.message for unavailable in page.unavailableExecutors or []})
            token = page.nextPageToken
            if not token:
                if missing:
                    raise IncompleteListError(missing)
                return

    async def logs(self, job_id: int, *, tail: int | None = None, attempt: int | None = None) -> Logs:
        """The trainer's output so far (the latest attempt unless ``attempt``); ``tail``: the last lines only."""
        call = Call("GET", f"/v1/jobs/{int(job_id)}/logs", query(tailLines=tail, attempt=attempt), retry_safe=True)
        response = await self._send(call)
        return Logs.from_headers(response.text, response.headers)

    async def stop(self, job_id: int) -> JobStatus:
        """Stops the job gracefully (SIGTERM, then the grace period); it stays queryable as ``stopped``.
        A finished job raises ConflictError. Not retried: the caller sees whether the stop arrived."""
        return JobStatus.model_validate((await self._send(Call("POST", f"/v1/jobs/{int(job_id)}/stop"))).json())

    async def events(
        self,
        job_id: int | None = None,
        *,
        project_id: int | None = None,
        framework: str | None = None,
        phase: str | None = None,
        last_event_id: str | None = None,
        until_terminal: bool | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Transitions as they happen (first those since ``last_event_id``, or the whole history).

        A dropped or silent connection is reopened with Last-Event-ID, with backoff; no event is
        yielded twice. One job's stream ends after its terminal transition (``until_terminal``,
        default for a job); the all-jobs stream runs until the caller stops iterating. Error answers
        (401, 404, ...) raise; the connection failing ``retry.attempts`` times in a row raises
        DispatcherUnreachableError.
        """
        if job_id is not None:
            call = Call("GET", f"/v1/jobs/{int(job_id)}/events")
        else:
            call = Call("GET", "/v1/events", query(projectId=project_id, framework=framework, phase=phase))
        stop_at_terminal = (job_id is not None) if until_terminal is None else until_terminal
        cursor = EventCursor(last_event_id)
        failures = 0
        while True:
            headers = {"last-event-id": cursor.last_event_id} if cursor.last_event_id else None
            try:
                async with self._stream(call, headers) as response:
                    failures = 0
                    decoder = SSEDecoder()
                    async for line in response.aiter_lines():
                        raw = decoder.feed(line)
                        event = cursor.accept(raw) if raw else None
                        if event is None:
                            continue
                        yield event
                        if stop_at_terminal and event.terminal:
                            return
            except (DispatcherUnreachableError, httpx.TransportError) as error:
                failures += 1
                if failures >= self._retry.attempts:
                    if isinstance(error, DispatcherError):
                        raise
                    raise DispatcherUnreachableError(f"GET {call.path}: {type(error).__name__}: {error}") from None
            await asyncio.sleep(self._retry.delay(failures))

    async def follow_logs(self, job_id: int, *, attempt: int | None = None, drain_seconds: float = 1.0) -> AsyncIterator[str]:
        """The trainer's output line by line as it is written, ending when the attempt ends (the
        latest attempt unless ``attempt``). For a job not started yet it waits for its first output.

        A Kubernetes log stream does not always end with its container (kwok's never does), so the
        job's event stream decides: once the attempt is over, lines still arriving within
        ``drain_seconds`` are yielded, then the stream is closed.
        """
        call = Call("GET", f"/v1/jobs/{int(job_id)}/logs", query(follow=True, attempt=attempt))
        while True:
            status = await self.get(job_id)
            async with self._stream(call) as response:
                state = response.headers.get("x-log-state")
                if state == "output":
                    number = int(response.headers.get("x-log-attempt") or attempt or 1)
                    async for line in self._lines_until_attempt_ends(job_id, number, response, drain_seconds):
                        yield line
                    return
            # Finished without output, or a state this client does not know (the pods are gone): nothing to follow.
            if status.phase in TERMINAL_PHASES or state != "no-output-yet":
                return
            # Not started yet: wait for its next transition (a job's event ids are its sequence numbers), then ask again.
            async for _ in self.events(job_id, last_event_id=str(len(status.transitions)), until_terminal=False):
                break

    async def _lines_until_attempt_ends(
        self, job_id: int, attempt: int, response: httpx.Response, drain_seconds: float
    ) -> AsyncIterator[str]:
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for line in response.aiter_lines():
                    await lines.put(line)
            finally:
                await lines.put(None)

        async def watch() -> None:
            try:
                async for event in self.events(job_id):
                    if ends_attempt(event, attempt):
                        return
            except NotFoundError:
                pass
            # No live events for this job (a local one): the dispatcher ends its log stream with the run.
            await asyncio.Event().wait()

        reader = asyncio.create_task(read())
        watcher = asyncio.create_task(watch())
        try:
            while True:
                if watcher.done():
                    watcher.result()
                    try:
                        line = await asyncio.wait_for(lines.get(), drain_seconds)
                    except TimeoutError:
                        return
                else:
                    getter = asyncio.create_task(lines.get())
                    await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        continue
                    line = getter.result()
                if line is None:
                    return
                yield line
        finally:
            for task in (reader, watcher):
                task.cancel()
            await asyncio.gather(reader, watcher, return_exceptions=True)
