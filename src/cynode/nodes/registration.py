"""Node registration: the PSK, the node row, and the bootstrap payload that answers it.

The PSK comes from ``CYNODE_NODE_REGISTRATION_PSK`` (or its ``_FILE`` variant). When this process
also runs the node role, an unset PSK is generated once into the data directory and shared with the
co-located node, so the all-in-one start needs no setup; otherwise an unset or empty PSK refuses to
start, because an empty PSK would let anyone register a node and receive dispatched work.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from cynode.context import OrchestratorContext
from cynode.contracts.nodes import (
    BootstrapEndpoints,
    BootstrapOrchestrator,
    NodeAuth,
    NodeBootstrapPayload,
    NodeCapabilityReport,
)
from cynode.nodes import repository
from cynode.nodes.auth import issue_node_token
from cynode.nodes.capabilities import store_report, validate_report
from cynode.secrets import persistent_secret, read_secret
from cynode.settings import ENV_PREFIX, Role, SettingsError

log = logging.getLogger(__name__)

PSK_SECRET = "node_registration_psk"  # noqa: S105 (the secret's name)
PSK_VARIABLE = ENV_PREFIX + PSK_SECRET.upper()

REGISTER_PATH = "/v1/nodes/register"
REPORT_PATH = "/v1/nodes/capability"
CONFIG_PATH = "/v1/nodes/config"
HEARTBEAT_PATH = "/v1/nodes/heartbeat"
SHUTDOWN_PATH = "/v1/nodes/shutdown"


def resolve_registration_psk(ctx: OrchestratorContext) -> str:
    """The PSK nodes must present; raises SettingsError when none is usable."""
    for variable in (PSK_VARIABLE, PSK_VARIABLE + "_FILE"):
        if variable in ctx.env and not ctx.env[variable].strip():
            raise SettingsError(f"{variable} is set but empty; an empty registration PSK would admit any node")
    psk = read_secret(PSK_SECRET, ctx.env)
    if psk is None and Role.NODE in ctx.roles:
        psk = persistent_secret(PSK_SECRET, ctx.settings.data_dir, ctx.env)
    if not psk or not psk.strip():
        raise SettingsError(
            f"no node registration PSK: set {PSK_VARIABLE} (or {PSK_VARIABLE}_FILE) to a shared secret "
            "that worker nodes present when they register"
        )
    return psk


def psk_matches(expected: str, presented: str) -> bool:
    # compare_digest only accepts ASCII str, so compare the UTF-8 bytes.
    return hmac.compare_digest(expected.encode(), presented.encode())


class PresentedPsk(msgspec.Struct):
    """Just the ``psk`` of a registration body: it is checked before the capability report is
    validated, so a caller without the PSK learns nothing about what a valid report looks like."""

    psk: str


@dataclass(frozen=True)
class NodeEndpoints:
    """Absolute URLs of the node-facing routes under the control plane's public base URL."""

    base_url: str

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    @property
    def register(self) -> str:
        return self.url(REGISTER_PATH)

    @property
    def report(self) -> str:
        return self.url(REPORT_PATH)

    @property
    def config(self) -> str:
        return self.url(CONFIG_PATH)

    @property
    def heartbeat(self) -> str:
        return self.url(HEARTBEAT_PATH)


async def register_node(
    ctx: OrchestratorContext, endpoints: NodeEndpoints, report: NodeCapabilityReport
) -> tuple[NodeBootstrapPayload, bool]:
    """Create or reactivate the node, store its report, and issue its JWT; True when created."""
    validate_report(report)
    slug = report.node.node_slug
    async with ctx.pool.connection() as conn, conn.transaction():
        node_id, created = await repository.upsert_registered_node(conn, slug)
        await store_report(conn, ctx, node_id, report)
    token = issue_node_token(ctx.signer, node_id, slug, ctx.settings.nodes.node_jwt_ttl_seconds)
    log.info("node_registered", extra={"node_slug": slug, "node_id": str(node_id), "new_node": created})
    bootstrap = NodeBootstrapPayload(
        version=1,
        issued_at=datetime.now(UTC).replace(microsecond=0),
        orchestrator=BootstrapOrchestrator(
            base_url=endpoints.base_url,
            endpoints=BootstrapEndpoints(
                worker_registration_url=endpoints.register,
                node_config_url=endpoints.config,
                node_report_url=endpoints.report,
                node_heartbeat_url=endpoints.heartbeat,
            ),
        ),
        # The JWT's exp claim is whole seconds; report the same instant.
        auth=NodeAuth(node_jwt=token.token, expires_at=token.expires_at.replace(microsecond=0)),
        # Three beats per grace period, so one lost beat never makes the node undispatchable.
        heartbeat_interval_seconds=ctx.settings.nodes.heartbeat_grace_seconds / 3,
    )
    return bootstrap, created
