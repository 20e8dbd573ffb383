"""Settings of OpenAI-compatible chat (the ``chat:`` section; env ``CYNODE_CHAT_*``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]


class ChatSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    wait_cap_seconds: PositiveFloat = 120.0
    """Longest a chat completion may take (for a stream: until its first token) before a 504."""
    transient_retries: NonNegativeInt = 2
    """How often a transient node failure (unreachable, 502, busy) is retried, on another node if any."""
    retry_backoff_seconds: PositiveFloat = 0.25
    """Wait before the first retry; doubled for each further one."""
    thread_idle_seconds: PositiveFloat = 2 * 3600.0
    """A (user, project) scope starts a new chat thread after its active one was idle this long."""
    node_connect_timeout_seconds: PositiveFloat = 5.0
