"""The status page: this gateway's health and the orchestrator's readiness with its reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request, Response, get
from litestar.types import ControllerRouterHandler

from cynode.web.console import Console


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    @get("/status")
    async def status(request: Request[Any, Any, Any]) -> Response[str]:
        viewer = await console.viewer(request)
        # The page is served by this process, so the gateway is healthy by construction; readiness is
        # the same check /readyz answers with.
        reason = await console.readiness()
        roles = sorted(role.value for role in console.context.roles)
        return console.page(viewer, "status.html", roles=roles, ready=reason is None, reason=reason)

    return [status]
