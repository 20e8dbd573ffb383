"""How much work waits and runs across the whole system: the dispatch queue's depth, for status pages."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.rows import DictRow


@dataclass(frozen=True)
class QueueDepth:
    queued: int
    running: int


async def queue_depth(conn: AsyncConnection[DictRow]) -> QueueDepth:
    """Jobs waiting for a node and jobs running on one, over every user."""
    cursor = await conn.execute(
        """
        SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
               count(*) FILTER (WHERE status = 'running') AS running
        FROM jobs
        """
    )
    row = await cursor.fetchone()
    assert row is not None  # an aggregate always returns one row
    return QueueDepth(queued=row["queued"], running=row["running"])
