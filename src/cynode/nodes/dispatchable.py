"""Which nodes may receive work now, for the dispatcher and readiness.

A node is dispatchable (CONTRACT.md section 5) when it is ``active``, its last config ack is
``applied`` for the config version it currently has, it has a Worker API URL and bearer token, and
it was heard from within ``nodes.heartbeat_grace_seconds``, and no operator has drained or disabled it
(:mod:`cynode.admin.nodes`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from cynode.contracts.codec import PayloadError, convert
from cynode.contracts.nodes import NodeCapabilityReport
from cynode.crypto import SecretBox
from cynode.db.pool import Connection
from cynode.nodes import repository


@dataclass(frozen=True)
class DispatchableNode:
    node_id: uuid.UUID
    node_slug: str
    worker_api_target_url: str
    """Base URL of the node's Worker API (the operator override when one is configured)."""
    capability: NodeCapabilityReport
    """The node's latest capability report."""
    _sealed_bearer_token: bytes = field(repr=False)
    _secret_box: SecretBox = field(repr=False)

    def bearer_token(self) -> str:
        """The token to present to this node's Worker API; decrypted on each call, never cached."""
        return self._secret_box.open(self._sealed_bearer_token, associated_data=str(self.node_id))

    @property
    def sandbox_max_concurrency(self) -> int:
        """How many sandbox jobs the node runs at once; 0 when it offers no sandbox (1 if unstated)."""
        sandbox = self.capability.sandbox
        if sandbox is None or not sandbox.supported:
            return 0
        return 1 if sandbox.max_concurrency is None else max(sandbox.max_concurrency, 0)

    @property
    def inference_running(self) -> bool:
        """The node reports a running inference backend (its own container or an existing service)."""
        inference = self.capability.inference
        return inference is not None and inference.running is True

    @property
    def available_models(self) -> tuple[str, ...]:
        inference = self.capability.inference
        return tuple(inference.available_models) if inference is not None else ()


async def dispatchable_nodes(
    conn: Connection, secret_box: SecretBox, heartbeat_grace_seconds: int
) -> list[DispatchableNode]:
    """Every dispatchable node, ordered by slug. A node whose stored report no longer decodes (an
    older build's snapshot) is skipped until it reports again."""
    nodes = []
    for row in await repository.select_dispatchable(conn, heartbeat_grace_seconds):
        if row.capability_snapshot is None:
            continue
        try:
            capability = convert(row.capability_snapshot, NodeCapabilityReport)
        except PayloadError:
            continue
        nodes.append(
            DispatchableNode(
                node_id=row.node_id,
                node_slug=row.node_slug,
                worker_api_target_url=row.worker_api_target_url,
                capability=capability,
                _sealed_bearer_token=row.bearer_token_ciphertext,
                _secret_box=secret_box,
            )
        )
    return nodes
