"""The nodes page: every node's health, last heartbeat, configuration version and acknowledgement,
running jobs, and the enable, disable and drain buttons (``cynode node enable|disable|drain``).

Reads and changes go through :class:`AdminService`, so a change is the admin API's conditional
UPDATE with its audit row; admins only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from cynode.admin.service import NODE_ACTIONS
from cynode.web.console import Console, see_other

NODES_PATH: Final = "/admin/nodes"
ACTION_LABELS: Final = {"enable": "Enable", "disable": "Disable", "drain": "Drain"}


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    admin = console.admin_service

    @get(NODES_PATH)
    async def node_list(request: Request[Any, Any, Any]) -> Response[str]:
        viewer = await console.admin(request)
        query = request.query_params
        notice = None
        if (slug := query.get("node")) and (state := query.get("state")) in NODE_ACTIONS.values():
            changed = query.get("changed") == "1"
            notice = f"Node {slug} is now {state}." if changed else f"Node {slug} was {state} already."
        listed = await admin.list_nodes()
        return console.page(
            viewer, "admin_nodes.html", nodes=listed.nodes, actions=NODE_ACTIONS, labels=ACTION_LABELS, notice=notice
        )

    def node_action_route(action: str) -> ControllerRouterHandler:
        @post(f"{NODES_PATH}/{{node_ref:str}}/{action}", name=f"web_{action}_node")
        async def change(request: Request[Any, Any, Any], node_ref: FromPath[str]) -> Response[Any]:
            viewer = await console.admin(request)
            await console.form(request, viewer.csrf_token)
            outcome = await admin.set_node_state(viewer.user, node_ref, action, console.client(request))
            node = outcome.node
            changed = "1" if outcome.changed else "0"
            return see_other(f"{NODES_PATH}?node={node.node_slug}&state={node.admin_state}&changed={changed}")

        return change

    return [node_list, *(node_action_route(action) for action in NODE_ACTIONS)]
