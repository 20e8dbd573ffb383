"""Capability reports: validation, the server-side ``capability_hash``, storage, and heartbeats.

The stored snapshot is the report as this build understands it (the typed re-encoding, so fields
left at their defaults and unknown fields are dropped); the hash is computed over the same form, so
two reports that mean the same thing hash the same. A new history row is written only when the
hash changes, which keeps one row per distinct capability state rather than one per report.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from cynode.context import OrchestratorContext
from cynode.contracts.codec import encode_canonical, to_json_object
from cynode.contracts.nodes import NodeCapabilityReport, NodeHeartbeat
from cynode.db.pool import Connection
from cynode.http.problems import ProblemError
from cynode.nodes import repository
from cynode.nodes.auth import AuthenticatedNode, NodeGone

log = logging.getLogger(__name__)

NODE_SLUG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
SLUG_MISMATCH = "node_slug does not match authenticated node"


def capability_snapshot(report: NodeCapabilityReport) -> dict[str, Any]:
    return to_json_object(report)


def capability_hash(report: NodeCapabilityReport) -> str:
    """``sha256:`` + hex SHA-256 of the canonical JSON (sorted keys, compact, UTF-8) without ``reported_at``."""
    snapshot = capability_snapshot(report)
    snapshot.pop("reported_at", None)
    return "sha256:" + hashlib.sha256(encode_canonical(snapshot)).hexdigest()


def validate_report(report: NodeCapabilityReport) -> None:
    """Reject what the schema alone cannot: an unusable slug or Worker API URL."""
    if not NODE_SLUG_PATTERN.match(report.node.node_slug):
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            "node.node_slug must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter "
            "or digit",
        )
    if report.worker_api is not None:
        parts = urlsplit(report.worker_api.base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProblemError(HTTPStatus.BAD_REQUEST, "worker_api.base_url must be an absolute http(s) URL")


def dispatch_url(report: NodeCapabilityReport, override: str | None) -> str | None:
    """Where to send this node's jobs: the operator override, else the URL the node reported."""
    if override:
        return override.rstrip("/")
    if report.worker_api is None:
        return None
    return report.worker_api.base_url.strip().rstrip("/")


async def store_report(
    conn: Connection, ctx: OrchestratorContext, node_id: uuid.UUID, report: NodeCapabilityReport
) -> None:
    """Record ``report`` for the node inside the caller's transaction."""
    digest = capability_hash(report)
    changed = await repository.record_capability(
        conn,
        node_id,
        snapshot=capability_snapshot(report),
        capability_hash=digest,
        reported_at=report.reported_at,
        worker_api_target_url=dispatch_url(report, ctx.settings.nodes.worker_api_target_url),
    )
    # Periodic reports of unchanged capabilities are routine; only changes are worth an info line.
    log.log(
        logging.INFO if changed else logging.DEBUG,
        "node_capability_recorded",
        extra={"node_slug": report.node.node_slug, "capability_hash": digest, "changed": changed},
    )


async def ingest_report(ctx: OrchestratorContext, node: AuthenticatedNode, report: NodeCapabilityReport) -> None:
    """A capability report from an authenticated node: also its heartbeat."""
    if report.node.node_slug != node.node_slug:
        raise ProblemError(HTTPStatus.BAD_REQUEST, SLUG_MISMATCH)
    validate_report(report)
    async with ctx.pool.connection() as conn, conn.transaction():
        try:
            await store_report(conn, ctx, node.node_id, report)
        except LookupError:
            raise NodeGone() from None


async def record_heartbeat(ctx: OrchestratorContext, node: AuthenticatedNode, heartbeat: NodeHeartbeat) -> None:
    if heartbeat.node_slug != node.node_slug:
        raise ProblemError(HTTPStatus.BAD_REQUEST, SLUG_MISMATCH)
    async with ctx.pool.connection() as conn:
        if not await repository.touch_node(conn, node.node_id):
            raise NodeGone()
