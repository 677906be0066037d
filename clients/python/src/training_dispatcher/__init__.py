"""Python client for the training dispatcher, and the receiver for its status callbacks.

from training_dispatcher import DispatcherClient
with DispatcherClient("http://dispatcher:8080", token) as dispatcher:
    job = dispatcher.submit({"jobId": 123, "framework": "timm", ...}).job
"""

__version__ = "1.0.0"

from ._protocol import DryRun, Logs, RetryPolicy, Submission, TransitionEvent
from .aclient import AsyncDispatcherClient
from .client import DispatcherClient
from .errors import (
    ConflictError,
    DispatcherError,
    DispatcherUnreachableError,
    InvalidRequestError,
    KubernetesUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from .models import JobStatus, Transition

__all__ = [
    "AsyncDispatcherClient",
    "ConflictError",
    "DispatcherClient",
    "DispatcherError",
    "DispatcherUnreachableError",
    "DryRun",
    "InvalidRequestError",
    "JobStatus",
    "KubernetesUnavailableError",
    "Logs",
    "NotFoundError",
    "PayloadTooLargeError",
    "RetryPolicy",
    "ServerError",
    "Submission",
    "Transition",
    "TransitionEvent",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
]
