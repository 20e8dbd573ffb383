"""The status page: this gateway's health, the orchestrator's readiness with its reason, and the queue depth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request, Response, get
from litestar.types import ControllerRouterHandler

from cynode.dispatch.queue import queue_depth
from cynode.web.console import Console


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    @get("/status")
    async def status(request: Request[Any, Any, Any]) -> Response[str]:
        viewer = await console.viewer(request)
        # The page is served by this process, so the gateway is healthy by construction; readiness is
        # the same check /readyz answers with.
        reason = await console.readiness()
        roles = sorted(role.value for role in console.context.roles)
        async with console.context.pool.connection() as conn:
            depth = await queue_depth(conn)
        return console.page(viewer, "status.html", roles=roles, ready=reason is None, reason=reason, depth=depth)

    return [status]
