"""Reclaiming jobs whose lease expired (their dispatcher died or lost the database).

One expired job at a time is locked (``FOR UPDATE SKIP LOCKED``, so several reapers never take the
same one). An attempt whose Worker API call was never sent is simply given back to the queue. One
that was sent may have run, so it is never run again blindly: the reaper takes the attempt over
(a new lease of its own, same attempt number, so no other reaper touches it and no new attempt can
be claimed) and then, outside any transaction, asks the node what became of the job. Finished:
the node's kept answer is stored, fenced by the attempt like any answer. Still running: the new
owner adopts the run and waits for its answer. Unknown to the node (it never got the call, or it
restarted and lost the run): the job is queued again while attempts remain (``rerun_unknown``).
A node that is gone or does not answer cannot say: the job fails with ``node_lost`` or
``lease_expired`` (``fail_sent``) and is not run again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from cynode.contracts.reasons import EndReason
from cynode.db.pool import Connection
from cynode.dispatch.claims import ClaimedJob, dispatch_error_result, finish_attempt, requeue_or_fail
from cynode.nodes.dispatchable import DispatchableNode


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


@dataclass(frozen=True)
class TakenOver:
    """An expired attempt this dispatcher now holds under a lease of its own."""

    lease: ExpiredLease
    task_id: uuid.UUID
    lease_id: uuid.UUID
    payload: dict[str, Any]

    def on(self, node: DispatchableNode) -> ClaimedJob:
        """The attempt as a claim on ``node``, to store its answer or adopt its run like a fresh claim's."""
        return ClaimedJob(self.lease.job_id, self.task_id, self.lease.attempt, self.lease_id, node, self.payload)


async def take_over(conn: Connection, lease: ExpiredLease, *, owner: str, lease_seconds: float) -> TakenOver | None:
    """Give the expired attempt a new lease held by ``owner``; None if it moved on meanwhile."""
    cursor = await conn.execute(
        """
        UPDATE jobs SET lease_id = gen_random_uuid(), lease_owner = %s,
            lease_expires_at = now() + make_interval(secs => %s), updated_at = now()
        WHERE id = %s AND attempt = %s AND status = 'running'
        RETURNING task_id, lease_id, payload
        """,
        (owner, lease_seconds, lease.job_id, lease.attempt),
    )
    row = await cursor.fetchone()
    return None if row is None else TakenOver(lease, row["task_id"], row["lease_id"], row["payload"])


async def rerun_unknown(conn: Connection, lease: ExpiredLease) -> str | None:
    """The node does not know the attempt, so it did not run to an answer: queue the job again (or
    fail it on its last attempt); as requeue_or_fail."""
    return await requeue_or_fail(
        conn,
        lease.job_id,
        lease.attempt,
        f"lease of attempt {lease.attempt} expired and its node does not know the job",
        "lease_expired",
    )


async def fail_sent(conn: Connection, lease: ExpiredLease, reason: EndReason) -> bool:
    """Fail a sent attempt whose dispatcher is gone and whose node cannot say what became of it."""
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
