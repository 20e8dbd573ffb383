"""Settings of the identity domain (the ``identity:`` section; env ``CYNODE_IDENTITY_*``)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import msgspec

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class IdentitySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    access_token_ttl_seconds: PositiveInt = 15 * 60
    refresh_token_ttl_seconds: PositiveInt = 7 * 24 * 3600
    session_max_lifetime_seconds: PositiveInt = 30 * 24 * 3600
    """However often it is refreshed, a session ends this long after its login."""
    login_attempts_per_minute_per_ip: PositiveInt = 60
    """Per client source (an IPv4 address, an IPv6 /64), whatever the handles."""
    login_attempts_per_minute_per_handle: PositiveInt = 20
    """Per handle from one source, so no one can use up another source's attempts."""
    login_failures_before_lockout: PositiveInt = 10
    """Credential failures that lock out a source, a handle from one source, or start slowing a handle down."""
    lockout_seconds: PositiveInt = 15 * 60
    """The window failures are counted in, how long a lockout lasts at most, and the longest slow-down."""
    login_delay_initial_seconds: PositiveInt = 5
    """The first wait of a slowed-down handle; each further failure doubles it, up to ``lockout_seconds``."""
    known_source_days: PositiveInt = 30
    """A source with a successful login for a handle this recently is not slowed down for that handle."""
    audit_retention_days: PositiveInt = 90
    audit_refusals_per_minute_per_source: PositiveInt = 60
    """Refused requests without a valid identity past this many per source and minute are only counted."""
    trusted_proxies: list[str] = []
    """Addresses or networks of proxies whose ``X-Forwarded-For`` is believed; empty ignores the header."""

    def __post_init__(self) -> None:
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise msgspec.ValidationError(f"trusted_proxies: {proxy!r} is not an IP address or network") from None
