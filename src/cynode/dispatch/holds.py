"""Nodes that get no jobs until they are heard from again.

A node is held when a job could not even start there (connection refused, 503 or 429 before the
run), when it stopped answering during a run, or when its node manager says it is shutting down.
The hold ends by itself as soon as the node is heard from after it (a heartbeat, a capability
report or a config ack moves ``nodes.last_seen_at`` past ``since``), so a node that comes back
needs nobody to lift it.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus
from typing import Final

from psycopg import sql

from cynode.context import OrchestratorContext
from cynode.contracts.nodes import NodeHeartbeat
from cynode.db.pool import Connection
from cynode.http.problems import ProblemError
from cynode.nodes.auth import AuthenticatedNode
from cynode.nodes.capabilities import SLUG_MISMATCH

SHUTDOWN_HOLD = "node is shutting down"

log = logging.getLogger(__name__)


async def hold_node(conn: Connection, node_id: uuid.UUID, reason: str) -> None:
    """Stop dispatching to ``node_id`` until it is heard from again."""
    await conn.execute(
        """
        INSERT INTO node_dispatch_holds (node_id, reason, since) VALUES (%s, %s, clock_timestamp())
        ON CONFLICT (node_id) DO UPDATE SET reason = EXCLUDED.reason, since = EXCLUDED.since
        """,
        (node_id, reason),
    )
    log.warning("node_dispatch_held", extra={"node_id": str(node_id), "reason": reason})


HELD_NODE_IDS: Final = sql.SQL("""
SELECT h.node_id FROM node_dispatch_holds h JOIN nodes n ON n.id = h.node_id
WHERE n.last_seen_at IS NULL OR n.last_seen_at <= h.since
""")
"""The query for the nodes held and not heard from since, for statements that need them inline."""


async def held_node_ids(conn: Connection) -> set[uuid.UUID]:
    """Nodes held and not heard from since."""
    cursor = await conn.execute(HELD_NODE_IDS)
    return {row["node_id"] for row in await cursor.fetchall()}


async def announce_shutdown(ctx: OrchestratorContext, node: AuthenticatedNode, notice: NodeHeartbeat) -> None:
    """The node's manager says it is stopping: dispatch nothing to it while its heartbeat grace runs out."""
    if notice.node_slug != node.node_slug:
        raise ProblemError(HTTPStatus.BAD_REQUEST, SLUG_MISMATCH)
    async with ctx.pool.connection() as conn:
        await hold_node(conn, node.node_id, SHUTDOWN_HOLD)
