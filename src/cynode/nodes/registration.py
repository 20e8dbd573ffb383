"""Node registration: the PSK, the node's identity, the node row, and the bootstrap payload.

The PSK only admits a node to register. Which node it is, is proven separately: the first
registration of a slug issues a per-node secret (only its SHA-256 is kept), and registering that
slug again needs it; without it the answer is 409, audited, and nothing about the node changes, so
whoever holds the PSK cannot take over a node's slug, Worker API token or the jobs sent to it.
Every accepted re-registration retires the node's Worker API token, so a new one is issued with the
node's next config.

The PSK comes from ``CYNODE_NODE_REGISTRATION_PSK`` (or its ``_FILE`` variant). When this process
also runs the node role, an unset PSK is generated once into the data directory and shared with the
co-located node, so the all-in-one start needs no setup; otherwise an unset or empty PSK refuses to
start, because an empty PSK would let anyone register a node and receive dispatched work.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Final

import msgspec

from cynode.context import OrchestratorContext
from cynode.contracts.nodes import (
    BootstrapEndpoints,
    BootstrapOrchestrator,
    NodeAuth,
    NodeBootstrapPayload,
    NodeRegistrationRequest,
)
from cynode.http.problems import ProblemError
from cynode.identity import audit
from cynode.identity.audit import AuthEvent, ClientInfo, FailureReason
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

_NODE_SECRET_BYTES: Final = 32


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


REGISTRATION_ATTEMPT: Final = "node_registration_attempt"
"""What registration requests are counted as, per source and minute (``auth_refusal_counts``)."""


async def throttle_registration(ctx: OrchestratorContext, client: ClientInfo) -> None:
    """Count a registration request of the client's source; 429 past the per-minute limit."""
    async with ctx.pool.connection() as conn:
        count = await audit.count_this_minute(conn, REGISTRATION_ATTEMPT, client.source)
    if count > ctx.settings.nodes.registrations_per_minute_per_source:
        log.warning("node_registration_throttled", extra={"client_ip": client.ip})
        next_minute = 60 - datetime.now(UTC).second
        raise ProblemError(
            HTTPStatus.TOO_MANY_REQUESTS,
            "Too many registrations from this address; try again later",
            headers={"Retry-After": str(next_minute)},
        )


class NodeIdentityRefused(ProblemError):
    """The slug is registered to a node that this caller could not prove to be."""

    def __init__(self) -> None:
        super().__init__(
            HTTPStatus.CONFLICT,
            "This node slug is registered to another node; present its node_secret to register it again",
        )


def _secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


async def register_node(
    ctx: OrchestratorContext,
    endpoints: NodeEndpoints,
    registration: NodeRegistrationRequest,
    client: ClientInfo,
) -> tuple[NodeBootstrapPayload, bool]:
    """Create or reactivate the node, store its report, and issue its JWT; True when created.

    Raises :class:`NodeIdentityRefused` when the slug is known and the node secret does not match.
    """
    report = registration.capability
    validate_report(report)
    slug = report.node.node_slug
    presented = None if registration.node_secret is None else _secret_digest(registration.node_secret)
    offered_secret = secrets.token_urlsafe(_NODE_SECRET_BYTES)
    async with ctx.pool.connection() as conn, conn.transaction():
        claimed = await repository.claim_node_slug(
            conn, slug, presented_digest=presented, offered_digest=_secret_digest(offered_secret)
        )
        if claimed is not None:
            await store_report(conn, ctx, claimed.node_id, report)
    if claimed is None:
        async with ctx.pool.connection() as conn:
            await audit.record(
                conn,
                AuthEvent.NODE_REGISTRATION_REFUSED,
                client,
                success=False,
                handle=slug,
                reason=FailureReason.NODE_IDENTITY_UNPROVEN,
            )
        log.warning("node_registration_conflict", extra={"node_slug": slug, "client_ip": client.ip})
        raise NodeIdentityRefused()
    node_id, created = claimed.node_id, claimed.created
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
        auth=NodeAuth(
            node_jwt=token.token,
            expires_at=token.expires_at.replace(microsecond=0),
            node_secret=offered_secret if claimed.secret_issued else None,
        ),
        # Three beats per grace period, so one lost beat never makes the node undispatchable.
        heartbeat_interval_seconds=ctx.settings.nodes.heartbeat_grace_seconds / 3,
    )
    return bootstrap, created
