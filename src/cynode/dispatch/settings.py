"""Settings of task dispatch (the ``dispatch:`` section; env ``CYNODE_DISPATCH_*``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from cynode.sandbox.settings import DEFAULT_SANDBOX_IMAGE

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class DispatchSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    """Image of every job the task API creates (commands, scripts and the prompt runner)."""
    lease_seconds: PositiveFloat = 30.0
    """How long a claim holds a job without renewal before the reaper may requeue it."""
    lease_renew_seconds: PositiveFloat = 10.0
    """How often a lease is renewed while its Worker API call is in flight (well under lease_seconds)."""
    safety_poll_seconds: PositiveFloat = 5.0
    """Queue re-check and reaper interval when no notification arrives (a missed NOTIFY costs this much)."""
    worker_connect_timeout_seconds: PositiveFloat = 3.0
    """A node that does not accept a connection this fast gets the job back in the queue (and is held)."""
    worker_reply_timeout_seconds: PositiveFloat = 5.0
    """Longest wait for a cancel or health-check answer from a node."""
    worker_call_timeout_seconds: PositiveFloat = 10800 + 300
    """Longest wait for a jobs:run answer: the longest job timeout a node allows, plus slack. A node
    that stops answering health checks for ``lease_seconds`` meanwhile loses the job (``node_lost``)."""
    worker_max_response_bytes: PositiveInt = 4 * 1024 * 1024
    """Largest Worker API answer read (two 256 KiB output streams, JSON-escaped, fit well within)."""
    max_active_tasks_per_user: PositiveInt = 1000
    """Queued plus running tasks one user may have; beyond it task creation answers 429."""

    def __post_init__(self) -> None:
        if self.lease_renew_seconds >= self.lease_seconds:
            raise ValueError("dispatch.lease_renew_seconds must be shorter than dispatch.lease_seconds")
