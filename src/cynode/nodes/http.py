"""Control-plane routes for nodes: register, capability report, config fetch and ack."""

from __future__ import annotations

from collections.abc import Sequence

from litestar.types import ControllerRouterHandler

from cynode.context import OrchestratorContext


def control_plane_routes(ctx: OrchestratorContext) -> Sequence[ControllerRouterHandler]:
    return []
