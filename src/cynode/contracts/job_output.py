"""Worker API payload for a running job's output so far: ``GET /v1/worker/jobs/{id}/output``."""

from typing import ClassVar, Literal

from cynode.contracts.codec import VersionedPayload

__all__ = ["JobOutputResponse", "OutputStream"]

OutputStream = Literal["stdout", "stderr"]


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
