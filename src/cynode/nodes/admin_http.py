"""User API routes for admins acting on nodes: rotating a node's Worker API token.

Rotation drops the stored token at once (the node is not dispatched to until it has a new one) and
makes the node's next control-plane call a 401, which its node manager answers by registering again
with its node secret and fetching a config that carries a newly issued token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from cynode.context import OrchestratorContext
from cynode.http.client_address import ClientAddressResolver
from cynode.http.problems import ProblemError
from cynode.identity import audit
from cynode.identity.audit import AuthEvent
from cynode.identity.guard import CURRENT_USER, CurrentUser, admin_user_provider
from cynode.identity.http import client_info
from cynode.nodes import repository

log = logging.getLogger(__name__)


def node_admin_routes(ctx: OrchestratorContext) -> Sequence[ControllerRouterHandler]:
    addresses = ClientAddressResolver(ctx.settings.identity.trusted_proxies)

    @post(
        "/v1/nodes/{node_slug:str}/rotate_worker_token",
        dependencies={CURRENT_USER: admin_user_provider(ctx)},
        status_code=HTTPStatus.NO_CONTENT,
    )
    async def rotate_worker_token(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], node_slug: FromPath[str]
    ) -> None:
        async with ctx.pool.connection() as conn, conn.transaction():
            if not await repository.retire_worker_token(conn, node_slug):
                raise ProblemError(HTTPStatus.NOT_FOUND, "Node not found")
            await audit.record(
                conn,
                AuthEvent.WORKER_TOKEN_ROTATED,
                client_info(request, addresses),
                success=True,
                user_id=current_user.id,
                handle=node_slug,
                reason=f"by {current_user.handle}",
            )
        log.info("worker_api_token_retired", extra={"node_slug": node_slug, "by": current_user.handle})

    return [rotate_worker_token]
