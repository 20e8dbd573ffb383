"""Worker API payloads about one job after its ``jobs:run`` call: its state and the ack of its result.

``GET /v1/worker/jobs/{id}`` answers a :class:`JobStateResponse`: ``running``, ``finished`` (with
the result the node keeps until an orchestrator acknowledges it), or ``unknown`` (never run here,
or its result was acknowledged or expired). ``POST /v1/worker/jobs/{id}:ack`` answers an
:class:`AckJobResponse`.
"""

from typing import ClassVar, Literal

from cynode.contracts.codec import VersionedPayload
from cynode.contracts.worker import RunJobResponse

__all__ = ["AckJobResponse", "JobState", "JobStateResponse"]

JobState = Literal["running", "finished", "unknown"]


class JobStateResponse(VersionedPayload, kw_only=True, omit_defaults=True):
    """What a node knows of a job: ``result`` and ``attempt`` are sent only when it is ``finished``."""

    payload_kind: ClassVar[str] = "job_state_response"

    job_id: str
    state: JobState
    attempt: int | None = None
    result: RunJobResponse | None = None


class AckJobResponse(VersionedPayload, kw_only=True):
    """Answer to an ack: whether the node still kept a result for the job (and has now dropped it)."""

    payload_kind: ClassVar[str] = "ack_job_response"

    job_id: str
    acknowledged: bool
