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
    transport_attempts: PositiveInt = 3
    """Connection attempts to a Worker API before the job fails as unreachable."""
    transport_retry_seconds: PositiveFloat = 0.5
    worker_connect_timeout_seconds: PositiveFloat = 10.0
    worker_call_timeout_seconds: PositiveFloat = 10800 + 300
    """Longest wait for a jobs:run answer: the longest job timeout a node allows, plus slack."""

    def __post_init__(self) -> None:
        if self.lease_renew_seconds >= self.lease_seconds:
            raise ValueError("dispatch.lease_renew_seconds must be shorter than dispatch.lease_seconds")
