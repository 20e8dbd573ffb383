"""The auth audit trail: every authentication and account event becomes a row of ``auth_audit_log``.

Owns the event and reason vocabularies and who the client was. Rows never hold a password, token
or hash; a failure's reason is for operators and is never shown to the client (clients get one
generic message so they learn nothing about which accounts exist).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import DictRow

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


class FailureReason(StrEnum):
    INVALID_REQUEST = "invalid request"
    RATE_LIMITED = "rate limited"
    LOCKED_OUT = "locked out"
    USER_NOT_FOUND = "user not found"
    USER_INACTIVE = "user inactive"
    SYSTEM_USER = "system user"
    NO_PASSWORD_CREDENTIAL = "no password credential"  # noqa: S105 - a reason code, not a password
    INVALID_PASSWORD = "invalid password"  # noqa: S105 - a reason code, not a password
    INVALID_REFRESH_TOKEN = "invalid refresh token"  # noqa: S105 - a reason code, not a token
    REFRESH_TOKEN_REUSED = "refresh token reused"  # noqa: S105 - a reason code, not a token


CREDENTIAL_FAILURES: Final = frozenset(
    {
        FailureReason.USER_NOT_FOUND,
        FailureReason.USER_INACTIVE,
        FailureReason.SYSTEM_USER,
        FailureReason.NO_PASSWORD_CREDENTIAL,
        FailureReason.INVALID_PASSWORD,
    }
)
"""Login failures that were guesses at a credential: these, and only these, lead to a lockout."""

THROTTLE_REJECTIONS: Final = frozenset({FailureReason.RATE_LIMITED, FailureReason.LOCKED_OUT})
"""Login failures the throttle itself answered; they do not count as attempts, so a lockout ends on time."""


@dataclass(frozen=True)
class ClientInfo:
    """Who sent the request, as far as the gateway can tell."""

    ip: str | None
    user_agent: str | None


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
