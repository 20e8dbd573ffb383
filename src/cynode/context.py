"""What the composition root hands to the database-backed domains when it wires them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cynode.crypto import SecretBox
from cynode.db.pool import Pool
from cynode.identity.auth_cache import AuthCache
from cynode.settings import Role, Settings
from cynode.tokens import TokenSigner

if TYPE_CHECKING:
    from cynode.worker.service import WorkerService


@dataclass(frozen=True)
class OrchestratorContext:
    """Shared by the orchestrator and gateway roles of one process."""

    settings: Settings
    roles: frozenset[Role]
    """Every role this process runs (e.g. a co-located node may share generated secrets)."""
    pool: Pool
    signer: TokenSigner
    secret_box: SecretBox
    env: Mapping[str, str]
    """Source of secrets (``CYNODE_*`` and ``CYNODE_*_FILE``); ``os.environ`` outside tests."""
    auth_cache: AuthCache = field(default_factory=AuthCache)
    """Trusted only when the pool's connections watch it and its listener runs (the composition root)."""


@dataclass(frozen=True)
class LocalWorker:
    """The Worker API of a node running in this process, reachable without HTTP."""

    node_slug: str
    service: WorkerService
