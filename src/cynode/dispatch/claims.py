"""Claiming queued jobs for nodes and recording how each attempt ended, as conditional SQL.

A claim moves one job ``queued`` -> ``running`` under a lease and increments ``jobs.attempt``, the
fencing token: every later write about that attempt (result, lease renewal, requeue) carries it in
its WHERE clause together with ``status = 'running'``, so a stale attempt, a canceled job or a
requeued one can never be overwritten. Each function reports whether its change won.

Row locks are always taken job first, then task (the task API's cancel does the same), so racing
transactions wait rather than deadlock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal

from psycopg.types.json import Jsonb

from cynode.contracts.reasons import EndReason
from cynode.dispatch.holds import held_node_ids
from cynode.nodes.dispatchable import DispatchableNode
from cynode.tasks.repository import Connection

# Serializes the "count a node's running jobs, then add one" step across dispatcher processes, so
# two of them can never fill the same last sandbox slot. Arbitrary constant all processes share.
CLAIM_LOCK_ID: Final = 0x6379_6E6F_6465_0004

EndStatus = Literal["completed", "failed"]


@dataclass(frozen=True)
class ClaimedJob:
    job_id: uuid.UUID
    task_id: uuid.UUID
    attempt: int
    lease_id: uuid.UUID
    node: DispatchableNode
    payload: dict[str, Any]


def dispatch_error_result(message: str, reason: EndReason) -> dict[str, Any]:
    """The result stored for a job the dispatcher could not get (or keep) a worker answer for."""
    return {"version": 1, "status": "failed", "exit_code": -1, "error": message, "reason": reason}


async def _running_per_node(conn: Connection, nodes: list[DispatchableNode]) -> dict[uuid.UUID, int]:
    cursor = await conn.execute(
        "SELECT node_id, count(*) AS running FROM jobs WHERE status = 'running' AND node_id = ANY(%s) GROUP BY node_id",
        ([node.node_id for node in nodes],),
    )
    return {row["node_id"]: row["running"] for row in await cursor.fetchall()}


def _choose_node(
    nodes: list[DispatchableNode], running: dict[uuid.UUID, int], *, needs_inference: bool
) -> DispatchableNode | None:
    """The least loaded node with a free sandbox slot (and running inference when needed)."""
    candidates = [
        node
        for node in nodes
        if running.get(node.node_id, 0) < node.sandbox_max_concurrency
        and (node.inference_running or not needs_inference)
    ]
    if not candidates:
        return None
    return min(
        candidates, key=lambda node: (running.get(node.node_id, 0) / node.sandbox_max_concurrency, node.node_slug)
    )


async def _next_fair_job(conn: Connection, *, inference_available: bool) -> dict[str, Any] | None:
    """Lock the oldest queued job of the user with the fewest running jobs (then the oldest head).

    Interleaving users this way means one user's long queue never starves another user's job.
    """
    cursor = await conn.execute(
        """
        WITH heads AS (
            SELECT DISTINCT ON (t.created_by) j.id, j.created_at, t.created_by
            FROM jobs j JOIN tasks t ON t.id = j.task_id
            WHERE j.status = 'queued' AND (NOT j.needs_inference OR %(inference)s)
            ORDER BY t.created_by, j.created_at, j.id
        ), running AS (
            SELECT t.created_by, count(*) AS jobs
            FROM jobs j JOIN tasks t ON t.id = j.task_id
            WHERE j.status = 'running'
            GROUP BY t.created_by
        )
        SELECT heads.id FROM heads LEFT JOIN running USING (created_by)
        ORDER BY coalesce(running.jobs, 0), heads.created_at, heads.id
        LIMIT 1
        """,
        {"inference": inference_available},
    )
    head = await cursor.fetchone()
    if head is None:
        return None
    cursor = await conn.execute(
        """
        SELECT id, task_id, needs_inference, payload FROM jobs
        WHERE id = %s AND status = 'queued'
        FOR UPDATE SKIP LOCKED
        """,
        (head["id"],),
    )
    return await cursor.fetchone()


async def claim_next(
    conn: Connection, nodes: list[DispatchableNode], *, owner: str, lease_seconds: float
) -> ClaimedJob | None:
    """Claim the next queued job (see ``_next_fair_job``) for a node that can take it now and is not
    held (``holds``); None when there is none.

    Must run inside a transaction. Jobs that need inference are skipped while no node with a free
    slot runs inference; they stay queued.
    """
    if not nodes:
        return None
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK_ID,))
    running = await _running_per_node(conn, nodes)
    plain_node = _choose_node(nodes, running, needs_inference=False)
    if plain_node is None:
        return None
    inference_node = _choose_node(nodes, running, needs_inference=True)
    job = await _next_fair_job(conn, inference_available=inference_node is not None)
    if job is None:
        return None
    # Read after the job: a node held just before this job was given back is seen as held.
    held = await held_node_ids(conn)
    available = [node for node in nodes if node.node_id not in held]
    node = _choose_node(available, running, needs_inference=job["needs_inference"])
    if node is None:
        return None
    cursor = await conn.execute(
        """
        UPDATE jobs
        SET status = 'running', attempt = attempt + 1, node_id = %(node)s,
            lease_id = gen_random_uuid(), lease_owner = %(owner)s,
            lease_expires_at = now() + make_interval(secs => %(lease)s),
            started_at = now(), ended_at = NULL, result = NULL, error = NULL, reason = NULL,
            run_sent_at = NULL, updated_at = now()
        WHERE id = %(id)s AND status = 'queued'
        RETURNING attempt, lease_id
        """,
        {"node": node.node_id, "owner": owner, "lease": lease_seconds, "id": job["id"]},
    )
    claimed = await cursor.fetchone()
    if claimed is None:
        return None
    await conn.execute(
        "UPDATE tasks SET status = 'running', updated_at = now() WHERE id = %s AND status = 'queued'",
        (job["task_id"],),
    )
    return ClaimedJob(
        job_id=job["id"],
        task_id=job["task_id"],
        attempt=claimed["attempt"],
        lease_id=claimed["lease_id"],
        node=node,
        payload=job["payload"],
    )


async def _follow_with_task(conn: Connection, task_id: uuid.UUID, job_status: str, reason: str | None) -> None:
    """Give the task the status (and reason) its (only) job just took; a terminal task never changes."""
    await conn.execute(
        """
        UPDATE tasks SET status = %s, reason = %s, updated_at = now()
        WHERE id = %s AND status IN ('queued', 'running')
        """,
        (job_status, reason, task_id),
    )


def _fence(job_id: uuid.UUID, attempt: int) -> dict[str, Any]:
    """The query parameters naming one attempt of a job (see the module docstring)."""
    return {"id": job_id, "attempt": attempt}


async def mark_run_sent(conn: Connection, job: ClaimedJob) -> bool:
    """Record that the attempt's Worker API call is about to go out; False when it is no longer current.

    From here on the attempt may have run, so a lost lease fails the job instead of re-running it.
    """
    cursor = await conn.execute(
        """
        UPDATE jobs SET run_sent_at = now()
        WHERE id = %s AND attempt = %s AND lease_id = %s AND status = 'running'
        RETURNING 1
        """,
        (job.job_id, job.attempt, job.lease_id),
    )
    return await cursor.fetchone() is not None


async def finish_attempt(
    conn: Connection,
    job_id: uuid.UUID,
    attempt: int,
    *,
    status: EndStatus,
    result: dict[str, Any],
    reason: EndReason | None,
    error: str | None = None,
) -> bool:
    """Record how ``attempt`` ended; False (and nothing written) when the attempt is no longer current.

    Must run inside a transaction.
    """
    cursor = await conn.execute(
        """
        UPDATE jobs
        SET status = %(status)s, result = %(result)s, error = %(error)s, reason = %(reason)s,
            ended_at = now(), updated_at = now(), lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
        RETURNING task_id
        """,
        {**_fence(job_id, attempt), "status": status, "result": Jsonb(result), "error": error, "reason": reason},
    )
    row = await cursor.fetchone()
    if row is None:
        return False
    await _follow_with_task(conn, row["task_id"], status, reason)
    return True


async def requeue(conn: Connection, job_id: uuid.UUID, attempt: int, error: str) -> bool:
    """Queue ``attempt``'s job again because the attempt never started; False when it is not current.

    An attempt that never reached a node does not use up the job's attempts: the job keeps its
    place until a node takes it. Must run inside a transaction.
    """
    cursor = await conn.execute(
        """
        UPDATE jobs
        SET status = 'queued', max_attempts = max_attempts + 1, error = %(error)s, updated_at = now(),
            lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL, run_sent_at = NULL
        WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
        RETURNING task_id
        """,
        {**_fence(job_id, attempt), "error": error},
    )
    row = await cursor.fetchone()
    if row is None:
        return False
    await _follow_with_task(conn, row["task_id"], "queued", None)
    return True


async def requeue_or_fail(
    conn: Connection, job_id: uuid.UUID, attempt: int, error: str, reason: EndReason
) -> str | None:
    """Give up ``attempt``: queue the job again while attempts remain, else fail it with ``reason``.

    Returns the job's new status (``queued`` or ``failed``), or None when the attempt was no longer
    current. Must run inside a transaction.
    """
    cursor = await conn.execute(
        """
        UPDATE jobs
        SET status = CASE WHEN attempt < max_attempts THEN 'queued' ELSE 'failed' END,
            result = CASE WHEN attempt < max_attempts THEN NULL ELSE %(result)s END,
            ended_at = CASE WHEN attempt < max_attempts THEN NULL ELSE now() END,
            reason = CASE WHEN attempt < max_attempts THEN NULL ELSE %(reason)s END,
            error = %(error)s, updated_at = now(), run_sent_at = NULL,
            lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
        RETURNING task_id, status, reason
        """,
        {
            **_fence(job_id, attempt),
            "result": Jsonb(dispatch_error_result(error, reason)),
            "error": error,
            "reason": reason,
        },
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    status: str = row["status"]
    await _follow_with_task(conn, row["task_id"], status, row["reason"])
    return status
