"""First-start users: the bootstrap ``admin`` and the reserved ``system`` user."""

from __future__ import annotations

from cynode.context import OrchestratorContext


async def ensure_bootstrap_users(ctx: OrchestratorContext) -> None:
    return None
