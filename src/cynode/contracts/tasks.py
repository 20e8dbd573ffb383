"""User API task payloads (`/v1/tasks` and its sub-resources)."""

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from cynode.contracts.codec import Timestamp

__all__ = [
    "TERMINAL_TASK_STATUSES",
    "CancelTaskResponse",
    "CreateTaskRequest",
    "InputMode",
    "JobStatus",
    "LogStream",
    "TaskListResponse",
    "TaskLogsResponse",
    "TaskResponse",
    "TaskResultJob",
    "TaskResultResponse",
    "TaskStatus",
]

# `prompt` goes to the model and is never run as shell; `script` and `commands` run in a sandbox.
InputMode = Literal["prompt", "script", "commands"]
TaskStatus = Literal["queued", "running", "completed", "failed", "canceled"]
TERMINAL_TASK_STATUSES: frozenset[TaskStatus] = frozenset({"completed", "failed", "canceled"})
"""A task in one of these states never changes again."""
# Jobs move through the same five states as the task that owns them.
JobStatus = TaskStatus
LogStream = Literal["stdout", "stderr", "all"]

MAX_ATTACHMENT_PATH_CHARS = 2048
MAX_ATTACHMENTS = 64
MAX_TASK_NAME_CHARS = 200

AttachmentPath = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ATTACHMENT_PATH_CHARS)]


class CreateTaskRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Body of POST /v1/tasks."""

    prompt: str
    input_mode: InputMode = "prompt"
    task_name: Annotated[str, msgspec.Meta(max_length=MAX_TASK_NAME_CHARS)] | None = None
    project_id: UUID | None = None
    attachments: Annotated[list[AttachmentPath], msgspec.Meta(max_length=MAX_ATTACHMENTS)] = []
    use_inference: bool = False
    """Give a script/commands job the inference proxy; prompt mode always has it."""


class TaskResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A task as returned by create, get and list; `id` and `task_id` carry the same UUID."""

    id: UUID
    task_id: UUID
    status: TaskStatus
    task_name: str
    prompt: str
    summary: str | None = None
    created_at: Timestamp
    updated_at: Timestamp
    attachments: list[str] = []
    reason: str | None = None
    """Why a task that is not ``completed`` ended (machine-readable, e.g. ``timeout``, ``node_lost``)."""


class TaskListResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One page of GET /v1/tasks; `next_cursor` is present only when another page exists."""

    tasks: list[TaskResponse]
    next_cursor: str | None = None


class TaskResultJob(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One job of a task result; `result` is the Worker API response as a JSON object, not a string."""

    id: UUID
    status: JobStatus
    node_slug: str | None = None
    attempt: int
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    result: dict[str, Any] | None = None
    reason: str | None = None
    """Why a job that is not ``completed`` ended (machine-readable, e.g. ``result_not_stored``)."""


class TaskResultResponse(msgspec.Struct, kw_only=True):
    """Body of GET /v1/tasks/{id}/result: the task status and its jobs in creation order."""

    task_id: UUID
    status: TaskStatus
    jobs: list[TaskResultJob]


class TaskLogsResponse(msgspec.Struct, kw_only=True):
    """Body of GET /v1/tasks/{id}/logs: stdout and stderr of all jobs, concatenated in order."""

    task_id: UUID
    stdout: str
    stderr: str


class CancelTaskResponse(msgspec.Struct, kw_only=True):
    """Body of POST /v1/tasks/{id}/cancel; `canceled` is false when the task had already finished."""

    task_id: UUID
    canceled: bool
    status: TaskStatus
