"""Reclaiming jobs whose lease expired (their dispatcher died or lost the database).

One expired job at a time is locked (``FOR UPDATE SKIP LOCKED``, so several reapers never take the
same one), its stale attempt is stopped on its node while the lock is held, and only then is the
job requeued or failed. Holding the lock across the stop means no new attempt can be claimed, and
no other reaper can send a stop, until the old container is gone: a late stop can never hit the
next attempt, which runs under the same job id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from cynode.dispatch.claims import requeue_or_fail
from cynode.tasks.repository import Connection


@dataclass(frozen=True)
class ExpiredLease:
    job_id: uuid.UUID
    attempt: int
    node_id: uuid.UUID | None


async def lock_next_expired(conn: Connection) -> ExpiredLease | None:
    """Lock the running job whose lease ran out first; None when no unlocked one is left.

    Must run inside a transaction, which then holds the job until it ends.
    """
    cursor = await conn.execute(
        """
        SELECT id, attempt, node_id FROM jobs
        WHERE status = 'running' AND lease_expires_at < now()
        ORDER BY lease_expires_at, id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """
    )
    row = await cursor.fetchone()
    return None if row is None else ExpiredLease(row["id"], row["attempt"], row["node_id"])


async def reclaim(conn: Connection, lease: ExpiredLease) -> str | None:
    """Requeue the locked job (or fail it on its last attempt); its new status, as requeue_or_fail."""
    return await requeue_or_fail(conn, lease.job_id, lease.attempt, f"lease of attempt {lease.attempt} expired")
