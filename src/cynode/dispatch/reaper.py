"""Finding and reclaiming jobs whose lease expired (their dispatcher died or lost the database)."""

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


async def expired_leases(conn: Connection) -> list[ExpiredLease]:
    """Running jobs whose lease ran out: their dispatcher died or lost the database."""
    cursor = await conn.execute(
        "SELECT id, attempt, node_id FROM jobs WHERE status = 'running' AND lease_expires_at < now() ORDER BY id"
    )
    return [ExpiredLease(row["id"], row["attempt"], row["node_id"]) for row in await cursor.fetchall()]


async def reap_expired(conn: Connection, lease: ExpiredLease) -> str | None:
    """Requeue (or fail) ``lease``'s attempt if its lease is still expired; same answer as requeue_or_fail."""
    cursor = await conn.execute(
        """
        SELECT 1 FROM jobs
        WHERE id = %s AND attempt = %s AND status = 'running' AND lease_expires_at < now()
        FOR UPDATE
        """,
        (lease.job_id, lease.attempt),
    )
    if await cursor.fetchone() is None:
        return None
    return await requeue_or_fail(conn, lease.job_id, lease.attempt, f"lease of attempt {lease.attempt} expired")
