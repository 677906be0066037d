"""The dispatcher's schemas, generated from its OpenAPI document by scripts/generate_models.py.

Do not edit: change the dispatcher's schemas and regenerate. Unknown fields are kept (extra="allow"),
so a newer dispatcher's additions do not break an older client.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel
from typing_extensions import TypeAliasType


class Verdict(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    accepted: bool
    message: str | None = None
    statusCode: Annotated[
        int | None, Field(ge=-9007199254740991, le=9007199254740991)
    ] = None


class DryRunResult(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    manifest: dict[str, Any]
    verdict: Verdict


class Error1(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    code: Literal[
        "invalid_request",
        "unauthorized",
        "not_found",
        "method_not_allowed",
        "request_timeout",
        "conflict",
        "payload_too_large",
        "uri_too_long",
        "unsupported_media_type",
        "quota_exceeded",
        "headers_too_large",
        "internal",
        "kubernetes_unavailable",
    ]
    field: str | None = None
    message: str


class Error(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    error: Error1


class Health(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    status: Literal["ok"]


class JsonValue(RootModel[Any]):
    root: Annotated[Any, Field(description="any JSON value")]


class Queue(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    flavor: str | None = None
    name: str
    position: Annotated[int | None, Field(gt=0, le=9007199254740991)] = None


class Executors(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    ready: Literal[True]


class Executors1(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    ready: Literal[False]
    reason: str


class Readiness(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    executors: dict[Literal["kubernetes", "local"], Executors | Executors1]
    status: Literal["ready", "not ready"]


class TimmDataset(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    format: Literal["imagefolder"]
    path: Annotated[
        str,
        Field(max_length=512, min_length=1, pattern="^[A-Za-z0-9_][A-Za-z0-9._/-]*$"),
    ]


class TimmResources(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    cpu: float | str | None = None
    cpuRequest: float | str | None = None
    gpu: Annotated[int | None, Field(ge=0, le=8)] = 1
    gpuType: Annotated[
        str | None, Field(pattern="^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
    ] = None
    memory: float | str | None = None
    memoryRequest: float | str | None = None


LabelsAdditionalProperty = TypeAliasType(
    "LabelsAdditionalProperty",
    Annotated[
        str, Field(pattern="^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
    ],
)


class TimmTrainingRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    advancedConfig: dict[str, JsonValue] | None = None
    batchSize: Annotated[int | None, Field(gt=0, le=65536)] = 32
    dataset: TimmDataset
    epochs: Annotated[int | None, Field(gt=0, le=100000)] = 50
    executor: Literal["kubernetes", "local"] | None = None
    framework: Literal["timm"]
    imageSize: Annotated[int | None, Field(gt=0, le=8192)] = None
    jobId: Annotated[int, Field(gt=0, le=9007199254740991)]
    labels: dict[str, LabelsAdditionalProperty] | None = {}
    learningRate: Annotated[float | None, Field(gt=0.0, le=1.0)] = 0.001
    maxRuntime: str | None = "24h"
    modelName: Annotated[
        str,
        Field(max_length=128, min_length=1, pattern="^[A-Za-z0-9_][A-Za-z0-9._/-]*$"),
    ]
    numClasses: Annotated[int | None, Field(gt=0, le=100000)] = None
    optimizer: Annotated[str | None, Field(pattern="^[a-z][a-z0-9_]{0,31}$")] = "adam"
    pretrained: bool | None = True
    priority: Literal["high", "default", "low"] | None = "default"
    projectId: Annotated[int | None, Field(gt=0, le=9007199254740991)] = None
    resources: TimmResources | None = None
    resumeFrom: Annotated[
        str | None,
        Field(
            pattern="^(?:r2|s3|gs):\\/\\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\\/[A-Za-z0-9_][A-Za-z0-9._/-]*$"
        ),
    ] = None
    taskType: Literal["image_classification"]


class TransformersDataset(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    format: Literal["imagefolder", "coco", "huggingface"]
    path: Annotated[
        str,
        Field(max_length=512, min_length=1, pattern="^[A-Za-z0-9_][A-Za-z0-9._/-]*$"),
    ]


class TransformersResources(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    cpu: float | str | None = None
    cpuRequest: float | str | None = None
    gpu: Annotated[int | None, Field(ge=0, le=8)] = 1
    gpuType: Annotated[
        str | None, Field(pattern="^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
    ] = None
    memory: float | str | None = None
    memoryRequest: float | str | None = None


class TransformersTrainingRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    advancedConfig: dict[str, JsonValue] | None = None
    batchSize: Annotated[int | None, Field(gt=0, le=65536)] = 32
    dataset: TransformersDataset
    epochs: Annotated[int | None, Field(gt=0, le=100000)] = 50
    executor: Literal["kubernetes", "local"] | None = None
    framework: Literal["transformers"]
    imageSize: Annotated[int | None, Field(gt=0, le=8192)] = None
    jobId: Annotated[int, Field(gt=0, le=9007199254740991)]
    labels: dict[str, LabelsAdditionalProperty] | None = {}
    learningRate: Annotated[float | None, Field(gt=0.0, le=1.0)] = 0.001
    maxRuntime: str | None = "24h"
    modelName: Annotated[
        str,
        Field(max_length=128, min_length=1, pattern="^[A-Za-z0-9_][A-Za-z0-9._/-]*$"),
    ]
    numClasses: Annotated[int | None, Field(gt=0, le=100000)] = None
    optimizer: Annotated[str | None, Field(pattern="^[a-z][a-z0-9_]{0,31}$")] = "adam"
    pretrained: bool | None = True
    priority: Literal["high", "default", "low"] | None = "default"
    projectId: Annotated[int | None, Field(gt=0, le=9007199254740991)] = None
    resources: TransformersResources | None = None
    resumeFrom: Annotated[
        str | None,
        Field(
            pattern="^(?:r2|s3|gs):\\/\\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\\/[A-Za-z0-9_][A-Za-z0-9._/-]*$"
        ),
    ] = None
    taskType: Literal[
        "image_classification", "object_detection", "semantic_segmentation"
    ]


class Transition(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    at: AwareDatetime
    attempt: Annotated[int | None, Field(gt=0, le=9007199254740991)] = None
    exitCode: Annotated[
        int | None, Field(ge=-9007199254740991, le=9007199254740991)
    ] = None
    message: str | None = None
    phase: Literal[
        "pending",
        "queued",
        "starting",
        "running",
        "retrying",
        "completed",
        "failed",
        "stopped",
    ]
    queue: Queue | None = None
    reason: str


class TransitionEvent(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    at: AwareDatetime
    attempt: Annotated[int | None, Field(gt=0, le=9007199254740991)] = None
    exitCode: Annotated[
        int | None, Field(ge=-9007199254740991, le=9007199254740991)
    ] = None
    jobId: Annotated[int, Field(gt=0, le=9007199254740991)]
    message: str | None = None
    phase: Literal[
        "pending",
        "queued",
        "starting",
        "running",
        "retrying",
        "completed",
        "failed",
        "stopped",
    ]
    queue: Queue | None = None
    reason: str
    sequence: Annotated[int, Field(gt=0, le=9007199254740991)]


class UltralyticsDataset(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    format: Literal["yolo", "coco"]
    path: Annotated[
        str,
        Field(max_length=512, min_length=1, pattern="^[A-Za-z0-9_][A-Za-z0-9._/-]*$"),
    ]


class UltralyticsResources(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    cpu: float | str | None = None
    cpuRequest: float | str | None = None
    gpu: Annotated[int | None, Field(ge=0, le=8)] = 1
    gpuType: Annotated[
        str | None, Field(pattern="^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
    ] = None
    memory: float | str | None = None
    memoryRequest: float | str | None = None


class UltralyticsTrainingRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    advancedConfig: dict[str, JsonValue] | None = None
    batchSize: Annotated[int | None, Field(gt=0, le=65536)] = 32
    dataset: UltralyticsDataset
    epochs: Annotated[int | None, Field(gt=0, le=100000)] = 50
    executor: Literal["kubernetes", "local"] | None = None
    framework: Literal["ultralytics"]
    imageSize: Annotated[int | None, Field(gt=0, le=8192)] = None
    jobId: Annotated[int, Field(gt=0, le=9007199254740991)]
    labels: dict[str, LabelsAdditionalProperty] | None = {}
    learningRate: Annotated[float | None, Field(gt=0.0, le=1.0)] = 0.001
    maxRuntime: str | None = "24h"
    modelName: Annotated[
        str,
        Field(max_length=128, min_length=1, pattern="^[A-Za-z0-9_][A-Za-z0-9._/-]*$"),
    ]
    numClasses: Annotated[int | None, Field(gt=0, le=100000)] = None
    optimizer: Annotated[str | None, Field(pattern="^[a-z][a-z0-9_]{0,31}$")] = "adam"
    pretrained: bool | None = True
    priority: Literal["high", "default", "low"] | None = "default"
    projectId: Annotated[int | None, Field(gt=0, le=9007199254740991)] = None
    resources: UltralyticsResources | None = None
    resumeFrom: Annotated[
        str | None,
        Field(
            pattern="^(?:r2|s3|gs):\\/\\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\\/[A-Za-z0-9_][A-Za-z0-9._/-]*$"
        ),
    ] = None
    taskType: Literal[
        "object_detection",
        "instance_segmentation",
        "image_classification",
        "pose_estimation",
    ]


class UnavailableExecutor(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    executor: Literal["kubernetes", "local"]
    message: str


class JobStatus(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    attempts: Annotated[int, Field(ge=0, le=9007199254740991)]
    completionTime: AwareDatetime | None = None
    executor: Literal["kubernetes", "local"]
    jobId: Annotated[int, Field(gt=0, le=9007199254740991)]
    lastExitCode: Annotated[
        int | None, Field(ge=-9007199254740991, le=9007199254740991)
    ] = None
    message: str | None = None
    name: str
    node: str | None = None
    phase: Literal[
        "pending",
        "queued",
        "starting",
        "running",
        "retrying",
        "completed",
        "failed",
        "stopped",
    ]
    queue: Queue | None = None
    reason: str
    startTime: AwareDatetime | None = None
    transitions: list[Transition]


class SubmitResponse(RootModel[JobStatus | DryRunResult]):
    root: JobStatus | DryRunResult


class TrainingRequest(
    RootModel[
        UltralyticsTrainingRequest | TimmTrainingRequest | TransformersTrainingRequest
    ]
):
    root: UltralyticsTrainingRequest | TimmTrainingRequest | TransformersTrainingRequest


class JobPage(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    jobs: list[JobStatus]
    nextPageToken: str | None = None
    unavailableExecutors: list[UnavailableExecutor] | None = None
