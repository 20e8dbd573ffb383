"""The status page: each role's health and readiness with its reason, and the queue depth.

The gateway serving the page is healthy by construction. An orchestrator in this process is too;
one elsewhere is asked for its ``/healthz`` at the control plane's public URL. The orchestrator's
readiness is the check ``/readyz`` answers with (it reads the shared database, so it holds wherever
the orchestrator runs). Nodes come from the admin status API's node inventory, so only admins see
them, as on the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from litestar import Request, Response, get
from litestar.types import ControllerRouterHandler

from cynode.contracts.admin import NodeResponse
from cynode.dispatch.queue import queue_depth
from cynode.http.health import healthz_problem
from cynode.settings import Role
from cynode.web.console import Console

_PROBE_TIMEOUT_SECONDS: Final = 2.0


async def orchestrator_unhealthy_reason(console: Console) -> str | None:
    """Why the orchestrator does not answer as healthy, or None when it does (or runs in this process)."""
    if Role.ORCHESTRATOR in console.context.roles:
        return None
    return await healthz_problem(
        "the control plane", console.context.settings.control_plane_public_url, _PROBE_TIMEOUT_SECONDS
    )


def node_not_ready_reason(node: NodeResponse) -> str | None:
    """Why the dispatcher would give ``node`` no new job now, or None when it would."""
    if node.dispatchable:
        return None
    if node.admin_state != "enabled":
        return f"{node.admin_state} by an admin"
    if node.last_heartbeat is None:
        return "no heartbeat yet"
    return f"registration {node.status}; no recent heartbeat, no Worker API address or no configuration acknowledged"


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    @get("/status")
    async def status(request: Request[Any, Any, Any]) -> Response[str]:
        viewer = await console.viewer(request)
        reason = await console.readiness()
        roles = sorted(role.value for role in console.context.roles)
        async with console.context.pool.connection() as conn:
            depth = await queue_depth(conn)
        nodes = (await console.admin_service.list_nodes()).nodes if viewer.is_admin else None
        return console.page(
            viewer,
            "status.html",
            roles=roles,
            orchestrator_here=Role.ORCHESTRATOR in console.context.roles,
            orchestrator_unhealthy=await orchestrator_unhealthy_reason(console),
            ready=reason is None,
            reason=reason,
            depth=depth,
            nodes=None if nodes is None else [(node, node_not_ready_reason(node)) for node in nodes],
        )

    return [status]
