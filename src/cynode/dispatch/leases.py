"""Keeping a claimed job's lease alive while its Worker API call is in flight.

A lease that cannot be renewed means the job is no longer this dispatcher's to run: it was
canceled, or the reaper gave it to another attempt. The keeper then stops the attempt on its node,
unless another dispatcher took the same attempt over (this one's lease had expired): that one now
waits for the run's answer, so the run must go on.
"""

from __future__ import annotations

from cynode.db.pool import Connection
from cynode.dispatch.claims import ClaimedJob


async def renew_lease(conn: Connection, job: ClaimedJob, lease_seconds: float) -> bool:
    """Extend the lease of a running attempt; False when the job was canceled, reaped or reclaimed."""
    cursor = await conn.execute(
        """
        UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %s), updated_at = now()
        WHERE id = %s AND attempt = %s AND lease_id = %s AND status = 'running'
        RETURNING 1
        """,
        (lease_seconds, job.job_id, job.attempt, job.lease_id),
    )
    return await cursor.fetchone() is not None


async def taken_over_elsewhere(conn: Connection, job: ClaimedJob) -> bool:
    """True when another dispatcher took over this attempt (its run goes on, under that one's lease)."""
    cursor = await conn.execute(
        "SELECT 1 FROM jobs WHERE id = %s AND attempt = %s AND status = 'running' AND lease_id <> %s",
        (job.job_id, job.attempt, job.lease_id),
    )
    return await cursor.fetchone() is not None


async def seconds_to_next_expiry(conn: Connection) -> float | None:
    """How long until the first running job's lease runs out (0 when one already has); None when none runs."""
    # Clamped here, not with SQL's greatest(): that ignores a NULL, so no running job would read as 0.
    cursor = await conn.execute(
        "SELECT extract(epoch FROM min(lease_expires_at) - now())::float8 AS seconds FROM jobs WHERE status = 'running'"
    )
    row = await cursor.fetchone()
    return None if row is None or row["seconds"] is None else max(0.0, float(row["seconds"]))
