"""Repository of login sessions (plain SQL on ``refresh_sessions``) and the refresh tokens that name them.

A session is a family of rows sharing ``family_id`` (the ``sid`` of its access tokens): login
inserts the first row, every refresh retires the presented row and inserts the next one. The
session is live while one of its rows is active and unexpired; revoking the session retires every
row, which is what makes its access tokens fail at once. Only the SHA-256 of a refresh token is
stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from cynode.identity.users import USER_COLUMNS, UserRow, user_from_row

_REFRESH_TOKEN_BYTES = 32


class RevokedReason(StrEnum):
    ROTATED = "rotated"
    LOGOUT = "logout"
    REUSE_DETECTED = "reuse_detected"
    ADMIN_REVOKED = "admin_revoked"
    USER_DISABLED = "user_disabled"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a reason code, not a password


@dataclass(frozen=True)
class RotatedSession:
    """The row a refresh retired, with the state of its user at that moment."""

    user: UserRow
    family_id: UUID
    session_started_at: datetime


@dataclass(frozen=True)
class PresentedToken:
    """What is known about a refresh token that could not be rotated."""

    user_id: UUID
    family_id: UUID
    revoked_reason: str | None


def new_refresh_token() -> str:
    return secrets.token_urlsafe(_REFRESH_TOKEN_BYTES)


def refresh_token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class SessionLifetime:
    refresh_ttl_seconds: int
    """How long one refresh token stays usable."""
    max_seconds: int
    """How long after its login a session ends, however often it was refreshed."""


async def insert_session_row(
    conn: AsyncConnection[DictRow],
    user_id: UUID,
    family_id: UUID,
    token_digest: bytes,
    lifetime: SessionLifetime,
    started_at: datetime | None,
) -> None:
    """Store the next refresh token of a session; ``started_at`` None starts a new session now."""
    await conn.execute(
        """
        INSERT INTO refresh_sessions (user_id, family_id, refresh_token_hash, session_started_at, expires_at)
        VALUES (%(user)s, %(family)s, %(digest)s, coalesce(%(started)s::timestamptz, now()),
                least(now() + make_interval(secs => %(ttl)s),
                      coalesce(%(started)s::timestamptz, now()) + make_interval(secs => %(max)s)))
        """,
        {
            "user": user_id,
            "family": family_id,
            "digest": token_digest,
            "started": started_at,
            "ttl": lifetime.refresh_ttl_seconds,
            "max": lifetime.max_seconds,
        },
    )


async def rotate(conn: AsyncConnection[DictRow], token_digest: bytes) -> RotatedSession | None:
    """Retire the live row holding ``token_digest``; None when no live row does.

    One conditional UPDATE, so of several callers presenting the same token exactly one gets a row.
    """
    cursor = await conn.execute(
        sql.SQL("""
        UPDATE refresh_sessions AS s
        SET is_active = false, revoked_at = now(), revoked_reason = %s, last_used_at = now(), updated_at = now()
        FROM users AS u
        WHERE s.refresh_token_hash = %s AND s.is_active AND s.expires_at > now() AND u.id = s.user_id
        RETURNING s.family_id, s.session_started_at, {columns}
        """).format(columns=USER_COLUMNS),
        (RevokedReason.ROTATED, token_digest),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return RotatedSession(
        user=user_from_row(row), family_id=row["family_id"], session_started_at=row["session_started_at"]
    )


async def find_presented(conn: AsyncConnection[DictRow], token_digest: bytes) -> PresentedToken | None:
    cursor = await conn.execute(
        "SELECT user_id, family_id, revoked_reason FROM refresh_sessions WHERE refresh_token_hash = %s",
        (token_digest,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return PresentedToken(user_id=row["user_id"], family_id=row["family_id"], revoked_reason=row["revoked_reason"])


async def revoke_session(conn: AsyncConnection[DictRow], user_id: UUID, family_id: UUID, reason: RevokedReason) -> int:
    """Retire every live row of one session of ``user_id``; how many were live."""
    cursor = await conn.execute(
        """
        UPDATE refresh_sessions
        SET is_active = false, revoked_at = now(), revoked_reason = %s, updated_at = now()
        WHERE user_id = %s AND family_id = %s AND is_active
        """,
        (reason, user_id, family_id),
    )
    return cursor.rowcount


async def revoke_all_sessions(conn: AsyncConnection[DictRow], user_id: UUID, reason: RevokedReason) -> int:
    """Retire every live row of every session of ``user_id``; how many were live."""
    cursor = await conn.execute(
        """
        UPDATE refresh_sessions
        SET is_active = false, revoked_at = now(), revoked_reason = %s, updated_at = now()
        WHERE user_id = %s AND is_active
        """,
        (reason, user_id),
    )
    return cursor.rowcount


async def live_session_user(conn: AsyncConnection[DictRow], user_id: UUID, family_id: UUID) -> UserRow | None:
    """The user of session ``family_id`` when the session is live and the user may act; else None."""
    cursor = await conn.execute(
        sql.SQL("""
        SELECT {columns}
        FROM users AS u
        WHERE u.id = %s AND u.is_active AND NOT u.is_system
          AND EXISTS (
              SELECT 1 FROM refresh_sessions AS s
              WHERE s.family_id = %s AND s.user_id = u.id AND s.is_active AND s.expires_at > now()
          )
        """).format(columns=USER_COLUMNS),
        (user_id, family_id),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return user_from_row(row)
