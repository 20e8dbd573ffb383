"""Reclaiming jobs whose lease expired (their dispatcher died or lost the database).

One expired job at a time is locked (``FOR UPDATE SKIP LOCKED``, so several reapers never take the
same one). An attempt whose Worker API call was never sent is simply given back to the queue. One
that was sent may have run, so it is never run again: the reaper fences it (takes the lease for a
short stop window, so no other reaper touches it and no new attempt can be claimed, the job still
being ``running``), stops it on its node outside any transaction with short deadlines, and then
fails it with ``lease_expired`` (or ``node_lost`` when its node is no longer dispatchable).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from cynode.contracts.reasons import EndReason
from cynode.dispatch.claims import dispatch_error_result, finish_attempt, requeue_or_fail
from cynode.tasks.repository import Connection


@dataclass(frozen=True)
class ExpiredLease:
    job_id: uuid.UUID
    attempt: int
    node_id: uuid.UUID | None
    run_sent: bool


async def lock_next_expired(conn: Connection) -> ExpiredLease | None:
    """Lock the running job whose lease ran out first; None when no unlocked one is left.

    Must run inside a transaction, which then holds the job until it ends.
    """
    cursor = await conn.execute(
        """
        SELECT id, attempt, node_id, run_sent_at IS NOT NULL AS run_sent FROM jobs
        WHERE status = 'running' AND lease_expires_at < now()
        ORDER BY lease_expires_at, id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """
    )
    row = await cursor.fetchone()
    return None if row is None else ExpiredLease(row["id"], row["attempt"], row["node_id"], row["run_sent"])


async def requeue_unsent(conn: Connection, lease: ExpiredLease) -> str | None:
    """Give a never-sent attempt back to the queue (or fail it on its last attempt); as requeue_or_fail."""
    return await requeue_or_fail(
        conn, lease.job_id, lease.attempt, f"lease of attempt {lease.attempt} expired", "lease_expired"
    )


async def fence(conn: Connection, lease: ExpiredLease, *, owner: str, stop_seconds: float) -> bool:
    """Take the expired attempt for ``stop_seconds`` while it is stopped on its node; False if it moved on."""
    cursor = await conn.execute(
        """
        UPDATE jobs SET lease_owner = %s, lease_expires_at = now() + make_interval(secs => %s), updated_at = now()
        WHERE id = %s AND attempt = %s AND status = 'running'
        RETURNING 1
        """,
        (owner, stop_seconds, lease.job_id, lease.attempt),
    )
    return await cursor.fetchone() is not None


async def fail_sent(conn: Connection, lease: ExpiredLease, reason: EndReason) -> bool:
    """Fail a sent attempt whose dispatcher is gone; it may have run, so it is not run again."""
    message = f"lease of attempt {lease.attempt} expired after its run was sent to the node"
    return await finish_attempt(
        conn,
        lease.job_id,
        lease.attempt,
        status="failed",
        result=dispatch_error_result(message, reason),
        reason=reason,
        error=message,
    )
