"""The auth audit trail: authentication and account events become rows of ``auth_audit_log``.

Owns the event and reason vocabularies, who the client was, and how long rows are kept. Rows never
hold a password, token or hash, nor a handle that names no user (it may be a mistyped password); a
failure's reason is for operators and is never shown to the client (clients get one generic
message so they learn nothing about which accounts exist).

Refusals of requests that carry no valid identity are counted per source and minute in
``auth_refusal_counts``; past ``audit_refusals_per_minute_per_source`` they are only counted, so an
unauthenticated flood adds one counter row a minute per source, not a row per request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from cynode.http.client_address import source_network

log = logging.getLogger(__name__)

MAX_USER_AGENT_LENGTH: Final = 512


class AuthEvent(StrEnum):
    LOGIN_SUCCESS = "login_success"
    LOGIN_FAILURE = "login_failure"
    REFRESH_SUCCESS = "refresh_success"
    REFRESH_FAILURE = "refresh_failure"
    LOGOUT = "logout"
    SESSION_REVOKED = "session_revoked"
    USER_CREATED = "user_created"
    USER_DISABLED = "user_disabled"
    USER_REENABLED = "user_reenabled"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - an event name, not a password
    LOCKOUT_STARTED = "lockout_started"
    LOCKOUT_CLEARED = "lockout_cleared"
    NODE_REGISTRATION_REFUSED = "node_registration_refused"
    WORKER_TOKEN_ROTATED = "worker_token_rotated"  # noqa: S105 - an event name, not a token


class FailureReason(StrEnum):
    INVALID_REQUEST = "invalid request"
    RATE_LIMITED = "rate limited"
    LOCKED_OUT = "locked out"
    DELAYED = "slowed down"
    USER_NOT_FOUND = "user not found"
    USER_INACTIVE = "user inactive"
    SYSTEM_USER = "system user"
    NO_PASSWORD_CREDENTIAL = "no password credential"  # noqa: S105 - a reason code, not a password
    INVALID_PASSWORD = "invalid password"  # noqa: S105 - a reason code, not a password
    INVALID_REFRESH_TOKEN = "invalid refresh token"  # noqa: S105 - a reason code, not a token
    REFRESH_TOKEN_REUSED = "refresh token reused"  # noqa: S105 - a reason code, not a token
    NODE_IDENTITY_UNPROVEN = "node secret missing or wrong"


@dataclass(frozen=True)
class ClientInfo:
    """Who sent the request, as far as the gateway can tell."""

    ip: str | None
    user_agent: str | None

    @property
    def source(self) -> str | None:
        """The network limits and counters key on (see ``cynode.http.client_address``)."""
        return source_network(self.ip)


async def record(
    conn: AsyncConnection[DictRow],
    event: AuthEvent,
    client: ClientInfo,
    *,
    success: bool,
    user_id: UUID | None = None,
    handle: str | None = None,
    reason: str | None = None,
) -> None:
    """Append one audit row (inside the caller's transaction, if any) and log the event."""
    user_agent = None if client.user_agent is None else client.user_agent[:MAX_USER_AGENT_LENGTH]
    await conn.execute(
        """
        INSERT INTO auth_audit_log (event_type, user_id, subject_handle, success, ip_address, user_agent, reason)
        VALUES (%s, %s, %s, %s, %s::inet, %s, %s)
        """,
        (event, user_id, handle, success, client.ip, user_agent, reason),
    )
    log.info(
        "auth_event",
        extra={
            "auth_event": event.value,
            "success": success,
            "user_id": None if user_id is None else str(user_id),
            "handle": handle,
            "client_ip": client.ip,
            "reason": reason,
        },
    )


async def count_this_minute(conn: AsyncConnection[DictRow], event: str, source: str | None) -> int:
    """Count one more ``event`` from ``source`` in the current minute; the count so far, this one included."""
    cursor = await conn.execute(
        """
        INSERT INTO auth_refusal_counts AS c (minute, source, event_type, refusals)
        VALUES (date_trunc('minute', now()), %s::cidr, %s, 1)
        ON CONFLICT (minute, source, event_type) DO UPDATE SET refusals = c.refusals + 1
        RETURNING refusals
        """,
        (source, event),
    )
    row = await cursor.fetchone()
    return 0 if row is None else int(row["refusals"])


async def record_refusal(
    conn: AsyncConnection[DictRow],
    event: AuthEvent,
    client: ClientInfo,
    reason: FailureReason,
    *,
    stored_per_minute: int,
    user_id: UUID | None = None,
    handle: str | None = None,
) -> None:
    """Count a refused request of this client's source; audit it as a row only below the threshold."""
    if await count_this_minute(conn, event, client.source) <= stored_per_minute:
        await record(conn, event, client, success=False, user_id=user_id, handle=handle, reason=reason)


async def purge_older_than(conn: AsyncConnection[DictRow], days: int) -> int:
    """Drop audit rows and refusal counts older than ``days``; how many audit rows went."""
    await conn.execute("DELETE FROM auth_refusal_counts WHERE minute < now() - make_interval(days => %s)", (days,))
    cursor = await conn.execute(
        "DELETE FROM auth_audit_log WHERE created_at < now() - make_interval(days => %s)", (days,)
    )
    return cursor.rowcount
