"""The synchronous client: AsyncDispatcherClient driven from a private event-loop thread, so both
clients are one implementation (same retries, resume and de-duplication)."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from ._protocol import Logs, RetryPolicy, StreamEvent, Submission
from .aclient import STREAM_READ_TIMEOUT, AsyncDispatcherClient
from .models import DryRunResult, JobStatus

T = TypeVar("T")


class DispatcherClient:
    """Calls the training dispatcher; the same calls as AsyncDispatcherClient, blocking.

    ``with DispatcherClient(url, token) as client: client.submit({...})``. Iterators (``list``,
    ``events``, ``follow_logs``) fetch lazily; leaving a ``for`` loop early closes their connection.
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
        self._loop = asyncio.new_event_loop()
        # A daemon thread: a client nobody closed must not keep the interpreter from exiting.
        self._thread = threading.Thread(target=self._loop.run_forever, name="training-dispatcher-client", daemon=True)
        self._thread.start()
        self._stop_loop = weakref.finalize(self, _stop, self._loop, self._thread)
        self._client = AsyncDispatcherClient(
            base_url, token, timeout=timeout, retry=retry, stream_read_timeout=stream_read_timeout, transport=transport
        )
        self.base_url = self._client.base_url

    def __repr__(self) -> str:
        return f"DispatcherClient({self.base_url!r})"

    def __enter__(self) -> DispatcherClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._stop_loop.alive:
            self._run(self._client.aclose())
            self._stop_loop()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if not self._stop_loop.alive:
            coroutine.close()
            raise RuntimeError("this DispatcherClient is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            # Interrupted (Ctrl-C) or failed: nothing of this call may go on in the background.
            future.cancel()
            raise

    def _call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        async def call() -> T:
            return await function(*args)

        return self._run(call())

    def _iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        async def step() -> tuple[bool, T | None]:
            try:
                return True, await anext(iterator)
            except StopAsyncIteration:
                return False, None

        try:
            while True:
                more, item = self._run(step())
                if not more:
                    return
                yield item  # type: ignore[misc]  # item is a T whenever more is True
        finally:
            aclose = getattr(iterator, "aclose", None)
            # Left early: close its connection, unless the client (and its loop) is already closed.
            if aclose is not None and self._stop_loop.alive:
                self._run(aclose())

    def submit(self, request: BaseModel | Mapping[str, Any]) -> Submission:
        return self._call(self._client.submit, request)

    def dry_run(self, request: BaseModel | Mapping[str, Any]) -> DryRunResult:
        return self._call(self._client.dry_run, request)

    def get(self, job_id: int) -> JobStatus:
        return self._call(self._client.get, job_id)

    def list(
        self,
        *,
        project_id: int | None = None,
        framework: str | None = None,
        phase: str | None = None,
        executor: str | None = None,
        page_size: int = 100,
    ) -> Iterator[JobStatus]:
        return self._iterate(
            self._client.list(project_id=project_id, framework=framework, phase=phase, executor=executor, page_size=page_size)
        )

    def logs(self, job_id: int, *, tail: int | None = None, attempt: int | None = None) -> Logs:
        async def fetch() -> Logs:
            return await self._client.logs(job_id, tail=tail, attempt=attempt)

        return self._call(fetch)

    def follow_logs(self, job_id: int, *, attempt: int | None = None, drain_seconds: float = 1.0) -> Iterator[str]:
        return self._iterate(self._client.follow_logs(job_id, attempt=attempt, drain_seconds=drain_seconds))

    def stop(self, job_id: int) -> JobStatus:
        return self._call(self._client.stop, job_id)

    def events(
        self,
        job_id: int | None = None,
        *,
        project_id: int | None = None,
        framework: str | None = None,
        phase: str | None = None,
        last_event_id: str | None = None,
        until_terminal: bool | None = None,
    ) -> Iterator[StreamEvent]:
        return self._iterate(
            self._client.events(
                job_id,
                project_id=project_id,
                framework=framework,
                phase=phase,
                last_event_id=last_event_id,
                until_terminal=until_terminal,
            )
        )


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    if not thread.is_alive():
        loop.close()
