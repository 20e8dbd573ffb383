"""Claiming queued jobs for nodes and recording how each attempt ended, as conditional SQL.

A claim moves one job ``queued`` -> ``running`` under a lease and increments ``jobs.attempt``, the
fencing token: every later write about that attempt (result, lease renewal, requeue) carries it in
its WHERE clause together with ``status = 'running'``, so a stale attempt, a canceled job or a
requeued one can never be overwritten. Each function reports whether its change won.

Every write here is one statement, so none needs a transaction of its own. Row locks are taken job
first, then task (the task API's cancel does the same), so racing transactions wait rather than
deadlock; a node's running-jobs counter (``node_running_jobs``) is only ever locked while holding a
job, and a task is never held by two statements about different jobs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal, LiteralString

from psycopg import sql
from psycopg.types.json import Jsonb

from cynode.contracts.reasons import EndReason
from cynode.db.pool import Connection
from cynode.dispatch.holds import HELD_NODE_IDS
from cynode.nodes.dispatchable import DispatchableNode

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


# Fair share and a node's free slots in one statement. ``candidate_nodes``: the given nodes with a
# free sandbox slot that are not held. ``node`` locks the counter row of the least loaded of them
# that has work it can take and that no other claimer is filling right now (so concurrent claims
# spread over the nodes instead of queueing for one row); the lock re-checks the free slots
# against the newest count, so two claimers never fill the same slot. Each job kind's queue (see
# sql/0011_queue_rank.sql: the rank is the owner's turn in a round-robin over users) gives up, one
# step down jobs_claim_idx, its first jobs no other claimer holds, as many as the node has free
# slots (up to ``limit``); jobs that need inference only for a node that runs inference. ``job``
# keeps the lowest ranked of both (locks on the rest end with the statement). The counter rises by
# trigger, once per claimed job.
_CLAIM = sql.SQL("""
WITH candidate_nodes AS (
    SELECT offered.node_id, offered.slots, offered.inference, offered.position
    FROM unnest(%(node_ids)s::uuid[], %(slots)s::int[], %(inference)s::bool[])
        WITH ORDINALITY AS offered (node_id, slots, inference, position)
    WHERE offered.node_id NOT IN ({held})
), waiting AS (
    SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND NOT needs_inference) AS plain,
           EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND needs_inference) AS inference
), node AS (
    SELECT used.node_id, candidate.inference, least(candidate.slots - used.running, %(limit)s) AS free
    FROM node_running_jobs used
    JOIN candidate_nodes candidate ON candidate.node_id = used.node_id
    CROSS JOIN waiting
    WHERE used.running < candidate.slots AND (waiting.plain OR (candidate.inference AND waiting.inference))
    ORDER BY used.running::float8 / candidate.slots, candidate.position
    LIMIT 1
    FOR UPDATE OF used SKIP LOCKED
), plain_heads AS (
    SELECT id, queue_rank, created_at FROM jobs
    WHERE status = 'queued' AND NOT needs_inference
    ORDER BY queue_rank, created_at, id LIMIT coalesce((SELECT free FROM node), 0)
    FOR UPDATE SKIP LOCKED
), inference_heads AS (
    SELECT id, queue_rank, created_at FROM jobs
    WHERE status = 'queued' AND needs_inference AND (SELECT inference FROM node)
    ORDER BY queue_rank, created_at, id LIMIT coalesce((SELECT free FROM node), 0)
    FOR UPDATE SKIP LOCKED
), job AS (
    SELECT id FROM (SELECT * FROM plain_heads UNION ALL SELECT * FROM inference_heads) heads
    ORDER BY queue_rank, created_at, id LIMIT coalesce((SELECT free FROM node), 0)
), claimed AS (
    UPDATE jobs
    SET status = 'running', attempt = attempt + 1, node_id = node.node_id,
        lease_id = gen_random_uuid(), lease_owner = %(owner)s,
        lease_expires_at = now() + make_interval(secs => %(lease)s),
        started_at = now(), ended_at = NULL, result = NULL, error = NULL, reason = NULL,
        run_sent_at = NULL, updated_at = now()
    FROM job, node
    WHERE jobs.id = job.id AND jobs.status = 'queued'
    RETURNING jobs.id, jobs.task_id, jobs.attempt, jobs.lease_id, jobs.node_id, jobs.payload,
              jobs.queue_rank, jobs.created_at
), task AS (
    UPDATE tasks SET status = 'running', updated_at = now()
    FROM claimed WHERE tasks.id = claimed.task_id AND tasks.status = 'queued'
)
SELECT id, task_id, attempt, lease_id, node_id, payload FROM claimed ORDER BY queue_rank, created_at, id
""").format(held=HELD_NODE_IDS)


async def claim_jobs(
    conn: Connection, nodes: list[DispatchableNode], *, owner: str, lease_seconds: float, limit: int
) -> list[ClaimedJob]:
    """Claim the next queued jobs in fair-share order (see ``_CLAIM``) for the least loaded of
    ``nodes`` that has a free sandbox slot, is not held (``holds``) and is not being filled by
    another claimer: as many as it has free slots, at most ``limit``, in claim order.

    Empty when no slot is free, no job waits that such a node can run, or every such node and job
    is being claimed by someone else right now (that claimer goes on until it finds none). One
    statement, so it needs no transaction of its own. Jobs that need inference stay queued while no
    node with a free slot runs inference.
    """
    offered = {node.node_id: node for node in nodes if node.sandbox_max_concurrency > 0}
    if not offered:
        return []
    cursor = await conn.execute(
        _CLAIM,
        {
            "node_ids": list(offered),
            "slots": [node.sandbox_max_concurrency for node in offered.values()],
            "inference": [node.inference_running for node in offered.values()],
            "owner": owner,
            "lease": lease_seconds,
            "limit": limit,
        },
    )
    return [
        ClaimedJob(
            job_id=claimed["id"],
            task_id=claimed["task_id"],
            attempt=claimed["attempt"],
            lease_id=claimed["lease_id"],
            node=offered[claimed["node_id"]],
            payload=claimed["payload"],
        )
        for claimed in await cursor.fetchall()
    ]


def _followed_by_task(job_update: LiteralString) -> sql.Composed:
    """``job_update`` (an ``UPDATE jobs ... RETURNING task_id, status, reason``) and, in the same
    statement, the task taking the status and reason its (only) job just took; a terminal task
    never changes. The statement returns the job's new status, no row when the update lost."""
    return sql.SQL("""
        WITH job AS ({job_update}), task AS (
            UPDATE tasks SET status = job.status, reason = job.reason, updated_at = now()
            FROM job WHERE tasks.id = job.task_id AND tasks.status IN ('queued', 'running')
        )
        SELECT status FROM job
        """).format(job_update=sql.SQL(job_update))


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


_FINISH = _followed_by_task(
    """
    UPDATE jobs
    SET status = %(status)s, result = %(result)s, error = %(error)s, reason = %(reason)s,
        ended_at = now(), updated_at = now(), lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
    RETURNING task_id, status, reason
    """
)

_REQUEUE = _followed_by_task(
    """
    UPDATE jobs
    SET status = 'queued', max_attempts = max_attempts + 1, error = %(error)s, reason = NULL, updated_at = now(),
        lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL, run_sent_at = NULL
    WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
    RETURNING task_id, status, reason
    """
)

_REQUEUE_OR_FAIL = _followed_by_task(
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
    """
)


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
    """Record how ``attempt`` ended; False (and nothing written) when the attempt is no longer current."""
    cursor = await conn.execute(
        _FINISH,
        {**_fence(job_id, attempt), "status": status, "result": Jsonb(result), "error": error, "reason": reason},
    )
    return await cursor.fetchone() is not None


async def requeue(conn: Connection, job_id: uuid.UUID, attempt: int, error: str) -> bool:
    """Queue ``attempt``'s job again because the attempt never started; False when it is not current.

    An attempt that never reached a node does not use up the job's attempts: the job keeps its
    place until a node takes it.
    """
    cursor = await conn.execute(_REQUEUE, {**_fence(job_id, attempt), "error": error})
    return await cursor.fetchone() is not None


async def requeue_or_fail(
    conn: Connection, job_id: uuid.UUID, attempt: int, error: str, reason: EndReason
) -> str | None:
    """Give up ``attempt``: queue the job again while attempts remain, else fail it with ``reason``.

    Returns the job's new status (``queued`` or ``failed``), or None when the attempt was no longer
    current.
    """
    cursor = await conn.execute(
        _REQUEUE_OR_FAIL,
        {
            **_fence(job_id, attempt),
            "result": Jsonb(dispatch_error_result(error, reason)),
            "error": error,
            "reason": reason,
        },
    )
    row = await cursor.fetchone()
    return None if row is None else str(row["status"])
