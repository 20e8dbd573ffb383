"""A running job's output so far: the Worker API's ``GET /v1/worker/jobs/{id}/output`` and its relay by
the control plane to a gateway running apart."""

from typing import ClassVar, Final, Literal, get_args

from cynode.contracts.codec import VersionedPayload

__all__ = ["OUTPUT_STREAMS", "JobOutputResponse", "OutputStream", "TaskOutputResponse"]

OutputStream = Literal["stdout", "stderr"]
OUTPUT_STREAMS: Final[tuple[OutputStream, ...]] = get_args(OutputStream)


class JobOutputResponse(VersionedPayload, kw_only=True):
    """One stream's output of a running job from byte offset ``after`` on, as text.

    Offsets count the bytes the job wrote (before any U+FFFD replacement); ``next_offset`` is the
    ``after`` of the next call. A character split at the end is held back until it is complete.
    Output past the node's per-stream capture limit is never shown: ``truncated`` says the job
    wrote more than that.
    """

    payload_kind: ClassVar[str] = "job_output_response"

    job_id: str
    stream: OutputStream
    after: int
    next_offset: int
    data: str
    truncated: bool
    replaced: bool
    """Some bytes in ``data`` were not UTF-8 text, or were NUL, and each became U+FFFD."""


class TaskOutputResponse(VersionedPayload, kw_only=True):
    """Control plane answer to a gateway running apart: the task's running job's output on one stream.

    ``GET /v1/orchestrator/tasks/{id}/output?stream=...&after=...[&job_id=...&attempt=...]`` with the
    caller's bearer token; ``after`` applies only while the same run (``job_id``, ``attempt``) goes
    on, otherwise the run's output is sent from its start. 204 when no job of the task runs now.
    """

    payload_kind: ClassVar[str] = "task_output_response"

    task_id: str
    job_id: str
    attempt: int
    output: JobOutputResponse
