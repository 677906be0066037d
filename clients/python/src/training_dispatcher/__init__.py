"""Python client for the training dispatcher, and the receiver for its status callbacks.

from training_dispatcher import DispatcherClient
with DispatcherClient("http://dispatcher:8080", token) as dispatcher:
    job = dispatcher.submit({"jobId": 123, "framework": "timm", ...}).job
"""

__version__ = "1.0.0"

from ._protocol import Logs, RetryPolicy, StreamEvent, Submission
from .aclient import AsyncDispatcherClient
from .client import DispatcherClient
from .errors import (
    ConflictError,
    DispatcherError,
    DispatcherUnreachableError,
    HeadersTooLargeError,
    IncompleteListError,
    InvalidRequestError,
    KubernetesUnavailableError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    QuotaExceededError,
    RequestTimeoutError,
    ServerError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    UriTooLongError,
)
from .models import DryRunResult, JobStatus, Queue, TrainingRequest, Transition

__all__ = [
    "AsyncDispatcherClient",
    "ConflictError",
    "DispatcherClient",
    "DispatcherError",
    "DispatcherUnreachableError",
    "DryRunResult",
    "HeadersTooLargeError",
    "IncompleteListError",
    "InvalidRequestError",
    "JobStatus",
    "KubernetesUnavailableError",
    "Logs",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Queue",
    "QuotaExceededError",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServerError",
    "StreamEvent",
    "Submission",
    "TrainingRequest",
    "Transition",
    "TransitionEvent",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "UriTooLongError",
]
