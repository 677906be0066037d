"""The backend the dispatcher calls back, for the tests: the package's FastAPI receiver behind uvicorn,
with switches that play a backend outage."""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Literal

import uvicorn
from fastapi import FastAPI, Request, Response

from training_dispatcher.receiver import CallbackReceiver, LogCallback, StatusCallback, callback_router

Outage = Literal["none", "down", "lost-ack"]
StatusListener = Callable[[int, StatusCallback], None]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RecordingBackend:
    """Applies callbacks through CallbackReceiver and records what it applied, per job, in order.

    outage "down": every callback answers 503 before it reaches the receiver (the backend is down).
    outage "lost-ack": the receiver applies the callback, then the answer is replaced by a 502, as when
    the backend committed but its answer never reached the dispatcher: the dispatcher must send it again.
    """

    def __init__(self, token: str) -> None:
        self.token = token
        self.statuses: dict[int, list[StatusCallback]] = defaultdict(list)
        self.lines: dict[int, list[LogCallback]] = defaultdict(list)
        self.listeners: dict[int, StatusListener] = {}
        self.outage: Outage = "none"
        self.refused = 0
        self.receiver = CallbackReceiver(token, on_status=self._on_status, on_log=self._on_log)
        self.app = FastAPI()
        self.app.include_router(callback_router(self.receiver))
        self.app.middleware("http")(self._outage)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="recording-backend", daemon=True)

    def _on_status(self, job_id: int, callback: StatusCallback) -> None:
        # A database commit takes a while: concurrent deliveries of one call overlap here.
        time.sleep(0.02)
        self.statuses[job_id].append(callback)
        listener = self.listeners.get(job_id)
        if listener is not None:
            listener(job_id, callback)

    def _on_log(self, job_id: int, callback: LogCallback) -> None:
        self.lines[job_id].append(callback)

    async def _outage(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if self.outage == "down":
            self.refused += 1
            return Response("backend down", status_code=503)
        response = await call_next(request)
        if self.outage == "lost-ack":
            self.refused += 1
            return Response("answer lost", status_code=502)
        return response

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the recording backend did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
