"""Plain SQL over ``chat_threads``, ``chat_messages`` and ``chat_audit_log`` (migration 0006).

The active thread of a (user, project) scope is its most recently used one unless that was idle
longer than the rotation threshold; creating one holds a transaction-scoped advisory lock on the
scope, so concurrent chats of one scope share one thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from cynode.db.pool import Connection
from cynode.tasks.repository import PageAfter


@dataclass(frozen=True)
class ThreadRow:
    id: uuid.UUID
    user_id: uuid.UUID
    project_id: uuid.UUID | None
    title: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MessageRow:
    id: uuid.UUID
    thread_id: uuid.UUID
    role: str
    content: str
    metadata: dict[str, Any]
    created_at: datetime


async def project_id_for_slug(conn: Connection, slug: str, user_id: uuid.UUID) -> uuid.UUID | None:
    """The active project with this slug that the user owns or that is shared; None otherwise."""
    cursor = await conn.execute(
        "SELECT id FROM projects WHERE slug = %s AND is_active AND (owner_id IS NULL OR owner_id = %s)",
        (slug, user_id),
    )
    row = await cursor.fetchone()
    return row["id"] if row else None


async def store_in_active_thread(
    conn: Connection,
    user_id: uuid.UUID,
    project_id: uuid.UUID,
    idle_seconds: float,
    message: tuple[str, str, dict[str, Any]],
) -> uuid.UUID:
    """Append (role, content, metadata) to the scope's active thread, created (titled with the
    content) when there is none or it went idle; returns the thread.

    The usual case (an active thread exists) is one statement. Creating a thread holds an advisory
    lock on the scope and looks again, so concurrent first messages still share one thread.
    """
    role, content, metadata = message
    parameters = {
        "user": user_id,
        "project": project_id,
        "idle": idle_seconds,
        "role": role,
        "content": content,
        "metadata": Jsonb(metadata),
    }
    cursor = await conn.execute(_APPEND_TO_ACTIVE, parameters)
    row = await cursor.fetchone()
    if row is not None:
        thread_id: uuid.UUID = row["thread_id"]
        return thread_id
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"chat-thread:{user_id}:{project_id}",)
        )
        cursor = await conn.execute(_APPEND_TO_ACTIVE, parameters)
        row = await cursor.fetchone()
        if row is None:
            cursor = await conn.execute(
                """
                WITH thread AS (
                    INSERT INTO chat_threads (user_id, project_id, title) VALUES (%(user)s, %(project)s, %(title)s)
                    RETURNING id
                )
                INSERT INTO chat_messages (thread_id, role, content, metadata)
                SELECT id, %(role)s, %(content)s, %(metadata)s FROM thread
                RETURNING thread_id
                """,
                {**parameters, "title": content[:_TITLE_CHARS]},
            )
            row = await cursor.fetchone()
    assert row is not None
    created: uuid.UUID = row["thread_id"]
    return created


_TITLE_CHARS = 80
# Touch the scope's active thread and append the message to it, in one statement.
_APPEND_TO_ACTIVE = """
WITH active AS (
    UPDATE chat_threads SET updated_at = clock_timestamp()
    WHERE id = (
        SELECT id FROM chat_threads
        WHERE user_id = %(user)s AND project_id = %(project)s
          AND updated_at > clock_timestamp() - make_interval(secs => %(idle)s)
        ORDER BY updated_at DESC LIMIT 1
    )
    RETURNING id
)
INSERT INTO chat_messages (thread_id, role, content, metadata)
SELECT id, %(role)s, %(content)s, %(metadata)s FROM active
RETURNING thread_id
"""


async def append_messages(
    conn: Connection, thread_id: uuid.UUID, messages: Iterable[tuple[str, str, dict[str, Any]]]
) -> None:
    """Append (role, content, metadata) messages in order and mark the thread as used now."""
    async with conn.transaction():
        for role, content, metadata in messages:
            await conn.execute(
                "INSERT INTO chat_messages (thread_id, role, content, metadata) VALUES (%s, %s, %s, %s)",
                (thread_id, role, content, Jsonb(metadata)),
            )
        await conn.execute("UPDATE chat_threads SET updated_at = clock_timestamp() WHERE id = %s", (thread_id,))


async def record_audit(
    conn: Connection,
    *,
    user_id: uuid.UUID,
    project_id: uuid.UUID,
    thread_id: uuid.UUID | None,
    model: str,
    redaction_kinds: Iterable[str],
    outcome: str,
) -> None:
    kinds = sorted(redaction_kinds)
    await conn.execute(
        """
        INSERT INTO chat_audit_log (user_id, project_id, thread_id, model, redaction_applied, redaction_kinds, outcome)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        """,
        (user_id, project_id, thread_id, model, bool(kinds), kinds, outcome),
    )


async def list_threads(conn: Connection, user_id: uuid.UUID, after: PageAfter | None, limit: int) -> list[ThreadRow]:
    """The user's threads, newest first, ``limit + 1`` of them to tell whether another page follows."""
    cursor = await conn.execute(
        """
        SELECT id, user_id, project_id, title, created_at, updated_at FROM chat_threads
        WHERE user_id = %(user)s
          AND (%(after_at)s::timestamptz IS NULL OR (created_at, id) < (%(after_at)s, %(after_id)s))
        ORDER BY created_at DESC, id DESC
        LIMIT %(limit)s
        """,
        {
            "user": user_id,
            "after_at": after.created_at if after else None,
            "after_id": after.id if after else None,
            "limit": limit + 1,
        },
    )
    return [ThreadRow(**row) for row in await cursor.fetchall()]


async def thread_of_user(conn: Connection, thread_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    cursor = await conn.execute("SELECT 1 FROM chat_threads WHERE id = %s AND user_id = %s", (thread_id, user_id))
    return await cursor.fetchone() is not None


async def list_messages(
    conn: Connection, thread_id: uuid.UUID, after: PageAfter | None, limit: int
) -> list[MessageRow]:
    """The thread's messages oldest first, ``limit + 1`` of them."""
    cursor = await conn.execute(
        """
        SELECT id, thread_id, role, content, metadata, created_at FROM chat_messages
        WHERE thread_id = %(thread)s
          AND (%(after_at)s::timestamptz IS NULL OR (created_at, id) > (%(after_at)s, %(after_id)s))
        ORDER BY created_at, id
        LIMIT %(limit)s
        """,
        {
            "thread": thread_id,
            "after_at": after.created_at if after else None,
            "after_id": after.id if after else None,
            "limit": limit + 1,
        },
    )
    return [MessageRow(**row) for row in await cursor.fetchall()]
