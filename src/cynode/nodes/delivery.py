"""Config delivery and acknowledgement for authenticated nodes.

Fetching builds the node's configuration from its latest report and current policy, and keeps its
``config_version`` when the content hash is unchanged; a changed hash mints a newer ULID with a
compare-and-set on the stored version, so concurrent fetches agree on one version. The Worker API
bearer token is generated on first fetch and kept sealed (AES-GCM, bound to the node id).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime
from http import HTTPStatus

from cynode.context import OrchestratorContext
from cynode.contracts.codec import PayloadError, convert
from cynode.contracts.nodes import NodeCapabilityReport, NodeConfigAck, NodeConfigurationPayload
from cynode.crypto import DecryptionError
from cynode.db.pool import Connection
from cynode.http.problems import ProblemError
from cynode.nodes import repository
from cynode.nodes.auth import AuthenticatedNode, NodeGone
from cynode.nodes.capabilities import SLUG_MISMATCH
from cynode.nodes.config import build_config_content, configuration_payload, content_hash, next_config_version
from cynode.nodes.project_manager import InvalidProjectManagerSetting, ProjectManagerPolicy, model_to_load
from cynode.nodes.registration import NodeEndpoints

log = logging.getLogger(__name__)

# Compare-and-set retries; losing more often than this means writers disagree on the content
# (e.g. replicas running with different policy), which a retry cannot settle.
_CAS_ATTEMPTS = 5


async def _node_or_gone(conn: Connection, node_id: uuid.UUID) -> repository.NodeRow:
    row = await repository.get_node(conn, node_id)
    if row is None:
        raise NodeGone()
    return row


async def _bearer_token(conn: Connection, ctx: OrchestratorContext, node: repository.NodeRow) -> str:
    """The node's Worker API token, generated on first use; an unreadable one (the secret key
    changed) is replaced, which changes the config content and so its version."""
    associated_data = str(node.id)
    sealed = node.worker_api_bearer_token_ciphertext
    for _ in range(_CAS_ATTEMPTS):
        if sealed is not None:
            try:
                return ctx.secret_box.open(sealed, associated_data=associated_data)
            except DecryptionError:
                log.warning("worker_api_token_unreadable", extra={"node_slug": node.node_slug})
        token = secrets.token_urlsafe(32)
        replacement = ctx.secret_box.seal(token, associated_data=associated_data)
        if await repository.replace_bearer_token(conn, node.id, expected=sealed, ciphertext=replacement):
            log.info("worker_api_token_issued", extra={"node_slug": node.node_slug})
            return token
        sealed = (await _node_or_gone(conn, node.id)).worker_api_bearer_token_ciphertext
    raise RuntimeError(f"could not settle the Worker API token of node {node.node_slug}")


async def _settle_config_version(conn: Connection, node: repository.NodeRow, digest: str) -> str:
    current = node
    for _ in range(_CAS_ATTEMPTS):
        if current.config_version is not None and current.config_content_hash == digest:
            return current.config_version
        version = next_config_version(current.config_version)
        if await repository.advance_config_version(
            conn, node.id, expected=current.config_version, config_version=version, content_hash=digest
        ):
            log.info(
                "node_config_version_minted",
                extra={"node_slug": node.node_slug, "config_version": version, "previous": current.config_version},
            )
            return version
        current = await _node_or_gone(conn, node.id)
    raise RuntimeError(f"config content of node {node.node_slug} keeps changing under concurrent fetches")


async def _model_policy(conn: Connection, ctx: OrchestratorContext) -> ProjectManagerPolicy:
    pinned = ctx.settings.nodes.project_manager_model
    try:
        return ProjectManagerPolicy.from_settings(await repository.project_manager_settings(conn), pinned)
    except InvalidProjectManagerSetting as exc:
        # Readiness reports the bad setting; configs meanwhile use the defaults.
        log.warning("project_manager_settings_invalid", extra={"reason": str(exc)})
        return ProjectManagerPolicy(pinned_model=pinned)


async def deliver_config(
    ctx: OrchestratorContext, endpoints: NodeEndpoints, node: AuthenticatedNode
) -> NodeConfigurationPayload:
    async with ctx.pool.connection() as conn:
        if not await repository.touch_node(conn, node.node_id):
            raise NodeGone()
        row = await _node_or_gone(conn, node.node_id)
        snapshot = await repository.latest_capability(conn, node.node_id)
        try:
            report = convert(snapshot or {}, NodeCapabilityReport)
        except PayloadError:
            raise ProblemError(
                HTTPStatus.CONFLICT, "No usable capability report on record for this node; register again"
            ) from None
        content = build_config_content(
            report=report,
            policy=ctx.settings.nodes,
            base_url=endpoints.base_url,
            report_url=endpoints.report,
            worker_api_target_url=row.worker_api_target_url,
            bearer_token=await _bearer_token(conn, ctx, row),
            selected_model=model_to_load(await _model_policy(conn, ctx), report),
        )
        version = await _settle_config_version(conn, row, content_hash(content))
    return configuration_payload(content, version, datetime.now(UTC).replace(microsecond=0))


async def acknowledge_config(ctx: OrchestratorContext, node: AuthenticatedNode, ack: NodeConfigAck) -> None:
    if ack.node_slug != node.node_slug:
        raise ProblemError(HTTPStatus.BAD_REQUEST, SLUG_MISMATCH)
    # A success clears an earlier failure's error.
    error = ack.error.message if ack.status == "failed" and ack.error is not None else None
    async with ctx.pool.connection() as conn:
        recorded = await repository.record_config_ack(
            conn, node.node_id, config_version=ack.config_version, status=ack.status, acked_at=ack.ack_at, error=error
        )
        if not recorded:
            row = await _node_or_gone(conn, node.node_id)
            raise ProblemError(
                HTTPStatus.CONFLICT,
                f"config_version {ack.config_version} is not acknowledgeable: it is newer than the node's current "
                f"config_version ({row.config_version or 'none issued yet'}) or older than its last acknowledged "
                f"one ({row.config_ack_version or 'none'})",
            )
    log.info(
        "node_config_acknowledged",
        extra={
            "node_slug": node.node_slug,
            "config_version": ack.config_version,
            "status": ack.status,
            "error_type": ack.error.type if ack.error is not None else None,
        },
    )
