"""Plain SQL over ``tasks``, ``jobs`` (as the gateway sees them), ``task_artifacts`` and ``projects``.

Every function takes a connection so callers decide the transaction. Reads are always scoped to
the owning user: a task of someone else is simply not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from cynode.db.params import comparable_text
from cynode.db.pool import Connection


@dataclass(frozen=True)
class TaskRow:
    id: uuid.UUID
    status: str
    task_name: str
    prompt: str
    summary: str | None
    created_at: datetime
    updated_at: datetime
    attachments: list[str]
    reason: str | None


@dataclass(frozen=True)
class JobRow:
    id: uuid.UUID
    status: str
    node_slug: str | None
    attempt: int
    started_at: datetime | None
    ended_at: datetime | None
    result: dict[str, Any] | None
    reason: str | None


@dataclass(frozen=True)
class PageAfter:
    """Keyset position: the last task of the previous page in (created_at DESC, id DESC) order."""

    created_at: datetime
    id: uuid.UUID


_TASK_COLUMNS = """
    t.id, t.status, t.task_name, t.prompt, t.summary, t.created_at, t.updated_at, t.reason,
    COALESCE((SELECT array_agg(a.path ORDER BY a.created_at, a.path) FROM task_artifacts a WHERE a.task_id = t.id),
             '{}') AS attachments
"""


def _task(row: DictRow) -> TaskRow:
    return TaskRow(**row)


async def ensure_default_project(conn: Connection, user_id: uuid.UUID) -> uuid.UUID:
    """The user's default project (slug ``default-<user id>``), created on first use."""
    cursor = await conn.execute("SELECT cynode_default_project(%s) AS id", (user_id,))
    row = await cursor.fetchone()
    assert row is not None
    project_id: uuid.UUID = row["id"]
    return project_id


async def project_usable_by(conn: Connection, project_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """The project exists, is active, and is the user's own or shared (no owner)."""
    cursor = await conn.execute("SELECT cynode_project_usable(%s, %s) AS usable", (project_id, user_id))
    row = await cursor.fetchone()
    assert row is not None
    usable: bool = row["usable"]
    return usable


@dataclass(frozen=True)
class CreateRefused:
    """Why :func:`create_task` created nothing; ``active`` counts the user's queued or running tasks
    when the cap was checked."""

    reason: Literal["cap_reached", "project_unusable"]
    active: int | None


async def create_task(
    conn: Connection,
    *,
    user_id: uuid.UUID,
    project_id: uuid.UUID | None,
    base_name: str,
    prompt: str,
    input_mode: str,
    payload: dict[str, Any],
    use_inference: bool,
    attachments: list[str],
    max_active: int | None,
) -> tuple[TaskRow, uuid.UUID] | CreateRefused:
    """A queued task, its one job and its attachments, in one round trip (``sql/0013_task_create.sql``):
    the task as stored and the job's id, or why nothing was created.

    ``project_id`` None is the user's default project; the name is ``base_name`` or ``base_name-N``
    with N one more than the highest in use; ``max_active`` None means no cap. Raises ``UniqueViolation`` when a racing
    create of the same user took the name first.
    """
    cursor = await conn.execute(
        """
        SELECT * FROM cynode_create_task(
            %(user)s, %(project)s::uuid, %(name)s, %(prompt)s, %(input_mode)s, %(payload)s, %(use_inference)s,
            %(attachments)s::text[], %(max_active)s::integer
        )
        """,
        {
            "user": user_id,
            "project": project_id,
            "name": base_name,
            "prompt": prompt,
            "input_mode": input_mode,
            "payload": Jsonb(payload),
            "use_inference": use_inference,
            "attachments": attachments,
            "max_active": max_active,
        },
    )
    row = await cursor.fetchone()
    assert row is not None
    refused, active, job_id = row.pop("refused"), row.pop("active"), row.pop("job_id")
    if refused is not None:
        return CreateRefused(refused, active)
    row["id"] = row.pop("task_id")
    return _task(row), job_id


async def get_task(conn: Connection, user_id: uuid.UUID, task_id: uuid.UUID) -> TaskRow | None:
    cursor = await conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM tasks t WHERE t.id = %s AND t.created_by = %s",  # noqa: S608
        (task_id, user_id),
    )
    row = await cursor.fetchone()
    return None if row is None else _task(row)


async def find_tasks(conn: Connection, lookups: Sequence[tuple[uuid.UUID, str]]) -> list[TaskRow | None]:
    """For each ``(user_id, reference)``, in order: that user's task whose id (when ``reference`` is
    a UUID) or name is ``reference``, the id winning, or None. One round trip for all of them."""
    ids: list[uuid.UUID | None] = []
    names: list[str | None] = []
    for _, reference in lookups:
        try:
            ids.append(uuid.UUID(reference))
        except ValueError:
            ids.append(None)
        names.append(comparable_text(reference))  # a NUL must not fail the other lookups sent with it
    # Per lookup, two primary-key-like probes, the id's first (an Append runs its branches in order
    # and the LIMIT stops at the first row): an OR of both would scan every task of the user.
    cursor = await conn.execute(
        f"""
        SELECT wanted.n, found.*
        FROM unnest(%(users)s::uuid[], %(refs)s::text[], %(ids)s::uuid[])
            WITH ORDINALITY AS wanted(user_id, ref, id, n)
        CROSS JOIN LATERAL (
            (SELECT {_TASK_COLUMNS} FROM tasks t WHERE t.id = wanted.id AND t.created_by = wanted.user_id)
            UNION ALL
            (SELECT {_TASK_COLUMNS} FROM tasks t WHERE t.created_by = wanted.user_id AND t.task_name = wanted.ref)
            LIMIT 1
        ) AS found
        """,  # noqa: S608
        {"users": [user_id for user_id, _ in lookups], "refs": names, "ids": ids},
    )
    found: list[TaskRow | None] = [None] * len(lookups)
    for row in await cursor.fetchall():
        position = row.pop("n") - 1
        found[position] = _task(row)
    return found


async def list_tasks(
    conn: Connection, user_id: uuid.UUID, *, status: str | None, after: PageAfter | None, limit: int
) -> list[TaskRow]:
    """Up to ``limit`` of the user's tasks, newest first, filtered by ``status`` before paging."""
    cursor = await conn.execute(
        f"""
        SELECT {_TASK_COLUMNS} FROM tasks t
        WHERE t.created_by = %(user)s
          AND (%(status)s::text IS NULL OR t.status = %(status)s)
          AND (%(after_at)s::timestamptz IS NULL OR (t.created_at, t.id) < (%(after_at)s, %(after_id)s::uuid))
        ORDER BY t.created_at DESC, t.id DESC
        LIMIT %(limit)s
        """,  # noqa: S608
        {
            "user": user_id,
            "status": status,
            "after_at": after.created_at if after else None,
            "after_id": after.id if after else None,
            "limit": limit,
        },
    )
    return [_task(row) for row in await cursor.fetchall()]


async def task_jobs(conn: Connection, task_id: uuid.UUID) -> list[JobRow]:
    """The task's jobs in creation order, with the slug of the node each last ran on."""
    cursor = await conn.execute(
        """
        SELECT j.id, j.status, n.node_slug, j.attempt, j.started_at, j.ended_at, j.result, j.reason
        FROM jobs j LEFT JOIN nodes n ON n.id = j.node_id
        WHERE j.task_id = %s
        ORDER BY j.created_at, j.id
        """,
        (task_id,),
    )
    return [JobRow(**row) for row in await cursor.fetchall()]


async def cancel_task(conn: Connection, task_id: uuid.UUID) -> bool:
    """Mark a queued or running task and its unfinished jobs ``canceled``; False when already terminal.

    Must run in a transaction. A running job's row change fires the ``cynode_job_canceled``
    notification (see sql/0004), on which the orchestrator holding its lease kills the container.
    Rows are locked jobs first, then the task: the order every dispatcher transaction uses too, so
    a cancel racing a claim or a result waits instead of deadlocking.
    """
    await conn.execute("SELECT id FROM jobs WHERE task_id = %s ORDER BY id FOR UPDATE", (task_id,))
    cursor = await conn.execute(
        """
        UPDATE tasks SET status = 'canceled', reason = 'canceled', updated_at = now()
        WHERE id = %s AND status IN ('queued', 'running')
        RETURNING id
        """,
        (task_id,),
    )
    if await cursor.fetchone() is None:
        return False
    await conn.execute(
        """
        UPDATE jobs
        SET status = 'canceled', reason = 'canceled', ended_at = now(), updated_at = now(),
            lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE task_id = %s AND status IN ('queued', 'running')
        """,
        (task_id,),
    )
    return True


@dataclass(frozen=True)
class RunningJobNode:
    """Where a task's job runs now, with what it takes to reach that node's Worker API."""

    job_id: uuid.UUID
    attempt: int
    node_id: uuid.UUID
    node_slug: str
    worker_api_target_url: str
    bearer_token_ciphertext: bytes
    capability_snapshot: dict[str, Any] | None


async def running_job_node(conn: Connection, task_id: uuid.UUID) -> RunningJobNode | None:
    """The task's job whose run was sent to a node and has not ended, and that node; None if none.

    ``task_id`` must come from a read already scoped to the caller (e.g. ``find_tasks``).
    """
    cursor = await conn.execute(
        """
        SELECT j.id AS job_id, j.attempt, n.id AS node_id, n.node_slug, n.worker_api_target_url,
               n.worker_api_bearer_token_ciphertext AS bearer_token_ciphertext, latest.capability_snapshot
        FROM jobs j
        JOIN nodes n ON n.id = j.node_id
        LEFT JOIN LATERAL (
            SELECT capability_snapshot FROM node_capabilities c
            WHERE c.node_id = n.id ORDER BY c.created_at DESC, c.id DESC LIMIT 1
        ) latest ON true
        WHERE j.task_id = %s AND j.status = 'running' AND j.run_sent_at IS NOT NULL
          AND n.worker_api_target_url <> '' AND n.worker_api_bearer_token_ciphertext IS NOT NULL
        ORDER BY j.created_at DESC, j.id DESC
        LIMIT 1
        """,
        (task_id,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return RunningJobNode(**{**row, "bearer_token_ciphertext": bytes(row["bearer_token_ciphertext"])})
