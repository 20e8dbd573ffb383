"""User API routes for tasks."""

from __future__ import annotations

from collections.abc import Sequence

from litestar.types import ControllerRouterHandler

from cynode.context import OrchestratorContext


def tasks_routes(ctx: OrchestratorContext) -> Sequence[ControllerRouterHandler]:
    return []
