"""User API routes for identity: login, refresh, logout, me, admin user management."""

from __future__ import annotations

from collections.abc import Sequence

from litestar.types import ControllerRouterHandler

from cynode.context import OrchestratorContext


def identity_routes(ctx: OrchestratorContext) -> Sequence[ControllerRouterHandler]:
    return []
