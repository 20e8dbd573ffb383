"""Settings of the identity domain (the ``identity:`` section; env ``CYNODE_IDENTITY_*``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class IdentitySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    access_token_ttl_seconds: PositiveInt = 15 * 60
    refresh_token_ttl_seconds: PositiveInt = 7 * 24 * 3600
    login_attempts_per_minute_per_ip: PositiveInt = 60
    login_attempts_per_minute_per_handle: PositiveInt = 20
    login_failures_before_lockout: PositiveInt = 10
    lockout_seconds: PositiveInt = 15 * 60
    """Both the window failures are counted in and how long a lockout lasts at most."""
    trust_forwarded_for: bool = False
    """Take the client IP from ``X-Forwarded-For``; only behind a proxy that sets it, else clients spoof it."""
