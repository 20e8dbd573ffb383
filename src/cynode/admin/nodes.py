"""Nodes as an operator sees and steers them: inventory, and the admin state that gates new work.

``admin_state`` (sql/0008) is the operator's word and outlives re-registration: ``enabled`` nodes
receive jobs; ``draining`` and ``disabled`` nodes get no new ones while their running jobs finish.
The dispatcher reads it with the other dispatchability rules (:mod:`cynode.nodes.dispatchable`).
State changes are conditional UPDATEs that report whether this call changed anything.
"""

from __future__ import annotations

import uuid
from typing import Any, Final, cast

from psycopg.rows import DictRow

from cynode.contracts.admin import NodeAdminState, NodeCapabilitySummary, NodeResponse
from cynode.contracts.codec import PayloadError, convert
from cynode.contracts.nodes import NodeCapabilityReport
from cynode.db.params import comparable_text
from cynode.db.pool import Connection

NODE_NOT_FOUND: Final = "Node not found"

_NODE_INVENTORY = """
    SELECT n.id, n.node_slug, n.status, n.admin_state, n.worker_api_target_url, n.last_seen_at,
           n.config_version, n.config_ack_status, n.config_ack_version, n.config_ack_error,
           latest.capability_snapshot,
           (SELECT count(*) FROM jobs j WHERE j.node_id = n.id AND j.status = 'running') AS running_jobs
    FROM nodes n
    LEFT JOIN LATERAL (
        SELECT capability_snapshot FROM node_capabilities c
        WHERE c.node_id = n.id ORDER BY c.created_at DESC, c.id DESC LIMIT 1
    ) latest ON true
"""

# A reference is a slug or the node's id; ids are compared as text so a slug never fails to cast.
_BY_REFERENCE = "n.node_slug = %(ref)s OR n.id::text = lower(%(ref)s)"


def capability_summary(snapshot: dict[str, Any] | None) -> NodeCapabilitySummary | None:
    """The headline numbers of a stored report; None when there is none (or it no longer decodes)."""
    if snapshot is None:
        return None
    try:
        report = convert(snapshot, NodeCapabilityReport)
    except PayloadError:
        return None
    devices = report.gpu.devices if report.gpu is not None and report.gpu.present else []
    sandbox = report.sandbox
    inference = report.inference
    return NodeCapabilitySummary(
        cpu_cores=report.compute.cpu_cores,
        ram_mb=report.compute.ram_mb,
        gpu_count=len(devices),
        vram_mb=sum(device.vram_mb or 0 for device in devices),
        sandbox_max_concurrency=(sandbox.max_concurrency or 1) if sandbox is not None and sandbox.supported else 0,
        inference_running=bool(inference is not None and inference.running),
        models=list(inference.available_models) if inference is not None else [],
    )


def node_response(row: DictRow, dispatchable: frozenset[uuid.UUID]) -> NodeResponse:
    return NodeResponse(
        node_id=row["id"],
        node_slug=row["node_slug"],
        status=row["status"],
        admin_state=cast(NodeAdminState, row["admin_state"]),
        enabled=row["admin_state"] == "enabled",
        dispatchable=row["id"] in dispatchable,
        running_jobs=row["running_jobs"],
        worker_api_url=row["worker_api_target_url"] or None,
        last_heartbeat=row["last_seen_at"],
        config_version=row["config_version"],
        config_ack_status=row["config_ack_status"],
        config_ack_version=row["config_ack_version"],
        config_ack_error=row["config_ack_error"],
        capability=capability_summary(row["capability_snapshot"]),
    )


async def inventory(conn: Connection) -> list[DictRow]:
    cursor = await conn.execute(_NODE_INVENTORY + " ORDER BY n.node_slug")
    return await cursor.fetchall()


async def find(conn: Connection, reference: str) -> DictRow | None:
    cursor = await conn.execute(_NODE_INVENTORY + f" WHERE {_BY_REFERENCE}", {"ref": comparable_text(reference)})
    return await cursor.fetchone()


async def set_admin_state(conn: Connection, reference: str, state: NodeAdminState) -> uuid.UUID | None:
    """Move the node to ``state``; its id when this call changed it, None when it was already there or is unknown."""
    cursor = await conn.execute(
        f"""
        UPDATE nodes AS n SET admin_state = %(state)s, updated_at = now()
        WHERE ({_BY_REFERENCE}) AND n.admin_state <> %(state)s
        RETURNING n.id
        """,  # noqa: S608 - the interpolated text is a constant
        {"ref": comparable_text(reference), "state": state},
    )
    row = await cursor.fetchone()
    return None if row is None else cast(uuid.UUID, row["id"])


async def job_counts(conn: Connection) -> tuple[int, int]:
    """How many jobs are queued and running across the system."""
    cursor = await conn.execute(
        """
        SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
               count(*) FILTER (WHERE status = 'running') AS running
        FROM jobs WHERE status IN ('queued', 'running')
        """
    )
    row = await cursor.fetchone()
    return (row["queued"], row["running"]) if row is not None else (0, 0)
