"""Repository of user accounts and their password credentials (plain SQL on ``users``, ``password_credentials``)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from cynode.identity.passwords import HASH_ALGORITHM

SYSTEM_HANDLE: Final = "system"
MAX_HANDLE_LENGTH: Final = 64
MAX_EMAIL_LENGTH: Final = 254

# Lowercase only, so no two accounts differ by case alone.
_HANDLE_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")
_EMAIL_PATTERN: Final = re.compile(r"[^@\s]+@[^@\s]+")

USER_COLUMNS: Final = sql.SQL("u.id, u.handle, u.email, u.is_active, u.is_admin, u.is_system")


@dataclass(frozen=True)
class UserRow:
    id: UUID
    handle: str
    email: str | None
    is_active: bool
    is_admin: bool
    is_system: bool


@dataclass(frozen=True)
class LoginCandidate:
    user: UserRow
    password_hash: str | None
    """None when the user has no password credential (e.g. the system user)."""


def user_from_row(row: DictRow) -> UserRow:
    return UserRow(
        id=row["id"],
        handle=row["handle"],
        email=row["email"],
        is_active=row["is_active"],
        is_admin=row["is_admin"],
        is_system=row["is_system"],
    )


def handle_problem(handle: str) -> str | None:
    """Why ``handle`` cannot name a new user, or None when it can."""
    if not 1 <= len(handle) <= MAX_HANDLE_LENGTH or not _HANDLE_PATTERN.fullmatch(handle):
        return (
            f"Handle must be 1 to {MAX_HANDLE_LENGTH} characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if handle == SYSTEM_HANDLE:
        return f"Handle {SYSTEM_HANDLE!r} is reserved"
    return None


def login_handle_problem(handle: str) -> str | None:
    """Why a handle given at login is refused before it is looked up or stored; None when it is not.

    Looser than :func:`handle_problem` (a wrong handle is a failed login, not a bad request), but
    nothing oversized and no control characters reach the database or the logs.
    """
    if not handle:
        return "Handle and password are required"
    if len(handle) > MAX_HANDLE_LENGTH:
        return "Handle or password is too long"
    if any(unicodedata.category(character) in {"Cc", "Cf"} for character in handle):
        return "Handle must not contain control characters"
    return None


def email_problem(email: str) -> str | None:
    """Why ``email`` is not acceptable, or None when it is."""
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL_PATTERN.fullmatch(email):
        return "Email must look like name@domain"
    return None


async def find_login_candidate(conn: AsyncConnection[DictRow], handle: str) -> LoginCandidate | None:
    cursor = await conn.execute(
        sql.SQL("""
        SELECT {columns}, c.password_hash
        FROM users u LEFT JOIN password_credentials c ON c.user_id = u.id
        WHERE u.handle = %s
        """).format(columns=USER_COLUMNS),
        (handle,),
    )
    row = await cursor.fetchone()
    return None if row is None else LoginCandidate(user_from_row(row), row["password_hash"])


async def get_user(conn: AsyncConnection[DictRow], user_id: UUID) -> UserRow | None:
    cursor = await conn.execute(
        sql.SQL("SELECT {columns} FROM users u WHERE u.id = %s").format(columns=USER_COLUMNS), (user_id,)
    )
    row = await cursor.fetchone()
    return None if row is None else user_from_row(row)


async def handle_exists(conn: AsyncConnection[DictRow], handle: str) -> bool:
    cursor = await conn.execute("SELECT 1 FROM users WHERE handle = %s", (handle,))
    return await cursor.fetchone() is not None


async def insert_user(
    conn: AsyncConnection[DictRow],
    handle: str,
    *,
    email: str | None = None,
    is_admin: bool = False,
    is_system: bool = False,
) -> UserRow | None:
    """Create a user; None when the handle or email is already taken (so concurrent creators never fail)."""
    cursor = await conn.execute(
        sql.SQL("""
        INSERT INTO users AS u (handle, email, is_admin, is_system) VALUES (%s, %s, %s, %s)
        ON CONFLICT DO NOTHING
        RETURNING {columns}
        """).format(columns=USER_COLUMNS),
        (handle, email, is_admin, is_system),
    )
    row = await cursor.fetchone()
    return None if row is None else user_from_row(row)


async def set_password_hash(conn: AsyncConnection[DictRow], user_id: UUID, password_hash: str) -> None:
    await conn.execute(
        """
        INSERT INTO password_credentials (user_id, password_hash, hash_alg) VALUES (%s, %s, %s)
        ON CONFLICT (user_id) DO UPDATE
        SET password_hash = EXCLUDED.password_hash, hash_alg = EXCLUDED.hash_alg, updated_at = now()
        """,
        (user_id, password_hash, HASH_ALGORITHM),
    )


async def set_active(conn: AsyncConnection[DictRow], user_id: UUID, active: bool) -> UserRow | None:
    """Set ``is_active`` on a non-system user; the updated row, or None when nothing changed."""
    cursor = await conn.execute(
        sql.SQL("""
        UPDATE users AS u SET is_active = %(active)s, updated_at = now()
        WHERE u.id = %(id)s AND NOT u.is_system AND u.is_active <> %(active)s
        RETURNING {columns}
        """).format(columns=USER_COLUMNS),
        {"id": user_id, "active": active},
    )
    row = await cursor.fetchone()
    return None if row is None else user_from_row(row)


async def list_users(conn: AsyncConnection[DictRow], *, after_handle: str | None, limit: int) -> list[UserRow]:
    """Up to ``limit`` non-system users ordered by handle, starting after ``after_handle``."""
    cursor = await conn.execute(
        sql.SQL("""
        SELECT {columns} FROM users u
        WHERE NOT u.is_system AND (%(after)s::text IS NULL OR u.handle > %(after)s)
        ORDER BY u.handle LIMIT %(limit)s
        """).format(columns=USER_COLUMNS),
        {"after": after_handle, "limit": limit},
    )
    return [user_from_row(row) for row in await cursor.fetchall()]
