"""The dispatcher's one error shape, {"error": {"code", "message", "field"?}}, as exceptions.

Every 4xx/5xx answer becomes a DispatcherError subclass chosen by its ``code`` (the status code
when the body is not the error shape, e.g. from a proxy). None of them carries the token.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar


class DispatcherError(Exception):
    """Any error answer of the dispatcher."""

    code: ClassVar[str] = "error"

    def __init__(
        self,
        status_code: int,
        message: str,
        field: str | None = None,
        code: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(f"{status_code} {code or self.code}: {message}")
        self.status_code = status_code
        self.message = message
        self.field = field
        #: The whole ``error`` object, for fields this client does not model yet.
        self.details = details or {}
        if code is not None:
            self.code = code  # type: ignore[misc]  # an instance may carry a code this client does not know yet


class InvalidRequestError(DispatcherError):
    """400: ``field`` names the first offending field (dotted, e.g. ``resources.cpuRequest``)."""

    code = "invalid_request"


class UnauthorizedError(DispatcherError):
    code = "unauthorized"


class NotFoundError(DispatcherError):
    code = "not_found"


class MethodNotAllowedError(DispatcherError):
    code = "method_not_allowed"


class RequestTimeoutError(DispatcherError):
    """408: the request did not reach the dispatcher in time; safe calls are retried before this is raised."""

    code = "request_timeout"


class ConflictError(DispatcherError):
    """409: a different request already holds this jobId (``fields`` lists what differs), or the job has finished."""

    code = "conflict"

    @property
    def fields(self) -> list[str]:
        """The differing fields the dispatcher named, in its order; empty for a conflict of state."""
        listed = self.details.get("fields")
        if isinstance(listed, list):
            return [str(name) for name in listed]
        match = re.search(r"differing fields: (.*)$", self.message)
        return [name.strip() for name in match.group(1).split(",")] if match else []


class PayloadTooLargeError(DispatcherError):
    code = "payload_too_large"


class UriTooLongError(DispatcherError):
    code = "uri_too_long"


class UnsupportedMediaTypeError(DispatcherError):
    code = "unsupported_media_type"


class QuotaExceededError(DispatcherError):
    """429: the training namespace's quota is full (the message quotes it); submit again when jobs finish."""

    code = "quota_exceeded"


class HeadersTooLargeError(DispatcherError):
    code = "headers_too_large"


class KubernetesUnavailableError(DispatcherError):
    """503: the dispatcher cannot reach the Kubernetes API; safe calls are retried before this is raised."""

    code = "kubernetes_unavailable"


class ServerError(DispatcherError):
    """5xx without a known code: the dispatcher (or something in front of it) failed."""

    code = "internal"


_BY_CODE: dict[str, type[DispatcherError]] = {
    cls.code: cls
    for cls in (
        InvalidRequestError,
        UnauthorizedError,
        NotFoundError,
        MethodNotAllowedError,
        RequestTimeoutError,
        ConflictError,
        PayloadTooLargeError,
        UriTooLongError,
        UnsupportedMediaTypeError,
        QuotaExceededError,
        HeadersTooLargeError,
        KubernetesUnavailableError,
        ServerError,
    )
}
_BY_STATUS: dict[int, type[DispatcherError]] = {
    400: InvalidRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    408: RequestTimeoutError,
    409: ConflictError,
    413: PayloadTooLargeError,
    414: UriTooLongError,
    415: UnsupportedMediaTypeError,
    429: QuotaExceededError,
    431: HeadersTooLargeError,
    503: KubernetesUnavailableError,
}


def error_from_response(status_code: int, body: bytes) -> DispatcherError:
    """The exception for an error answer; a body that is not the error shape still yields a typed error."""
    try:
        error = json.loads(body)["error"]
        code, message, field = str(error["code"]), str(error["message"]), error.get("field")
    except (ValueError, KeyError, TypeError):
        cls = _BY_STATUS.get(status_code, ServerError if status_code >= 500 else DispatcherError)
        return cls(status_code, body.decode("utf-8", "replace")[:500] or f"HTTP {status_code}")
    cls = _BY_CODE.get(code, ServerError if status_code >= 500 else DispatcherError)
    return cls(status_code, message, str(field) if field is not None else None, code=code, details=dict(error))


class DispatcherUnreachableError(DispatcherError):
    """No answer: the connection failed or timed out (after the retries a safe call gets)."""

    code = "unreachable"

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class IncompleteListError(DispatcherError):
    """A listing the dispatcher could not complete: an executor that may hold matching jobs did not answer.
    Raised after the jobs it could list were yielded; ``executors`` maps each missing executor to why."""

    code = "incomplete_list"

    def __init__(self, executors: dict[str, str]) -> None:
        reasons = "; ".join(f"{executor}: {message}" for executor, message in executors.items())
        super().__init__(200, f"the listing is incomplete: {reasons}")
        self.executors = executors
