"""Admin routes on the user gateway; each needs an admin's access token (401 without one, 403 for others).

``/v1/users`` (list, get), ``/v1/nodes`` (list, get, enable, disable, drain), ``/v1/settings``
(list, get, put), ``/v1/credentials`` (list, add, rotate, disable) and ``/v1/status``. Handlers
only translate between HTTP and :class:`AdminService`.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from litestar import Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from cynode.admin.service import NODE_ACTIONS, AdminService, parse_page_size, parse_uuid
from cynode.context import OrchestratorContext
from cynode.contracts.admin import AddCredentialRequest, RotateCredentialRequest, SetSettingRequest
from cynode.http.paging import refuse_offset
from cynode.http.payloads import json_response, read_json
from cynode.identity.guard import CURRENT_USER, CurrentUser, admin_user_provider
from cynode.identity.http import client_reader


def admin_routes(ctx: OrchestratorContext) -> Sequence[ControllerRouterHandler]:
    service = AdminService(ctx)
    admin_only = {CURRENT_USER: admin_user_provider(ctx)}
    client_of = client_reader(ctx)

    @get("/v1/users", dependencies=admin_only)
    async def list_users(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser]
    ) -> Response[bytes]:
        query = request.query_params
        refuse_offset(query)
        page = await service.list_users(cursor=query.get("cursor"), limit=parse_page_size(query.get("limit")))
        return json_response(page)

    @get("/v1/users/{user_id:str}", dependencies=admin_only)
    async def get_user(current_user: NamedDependency[CurrentUser], user_id: FromPath[str]) -> Response[bytes]:
        return json_response(await service.get_user(parse_uuid(user_id, "user")))

    @get("/v1/nodes", dependencies=admin_only)
    async def list_nodes(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser]
    ) -> Response[bytes]:
        refuse_offset(request.query_params)
        return json_response(await service.list_nodes())

    @get("/v1/nodes/{node_ref:str}", dependencies=admin_only)
    async def get_node(current_user: NamedDependency[CurrentUser], node_ref: FromPath[str]) -> Response[bytes]:
        return json_response(await service.get_node(node_ref))

    def node_action_route(action: str) -> ControllerRouterHandler:
        @post(f"/v1/nodes/{{node_ref:str}}/{action}", dependencies=admin_only, name=f"{action}_node",
              status_code=HTTPStatus.OK)  # fmt: skip
        async def change(
            request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], node_ref: FromPath[str]
        ) -> Response[bytes]:
            return json_response(await service.set_node_state(current_user, node_ref, action, client_of(request)))

        return change

    @get("/v1/settings", dependencies=admin_only)
    async def list_settings(current_user: NamedDependency[CurrentUser]) -> Response[bytes]:
        return json_response(await service.list_settings())

    @get("/v1/settings/{key:str}", dependencies=admin_only)
    async def get_setting(current_user: NamedDependency[CurrentUser], key: FromPath[str]) -> Response[bytes]:
        return json_response(await service.get_setting(key))

    @put("/v1/settings/{key:str}", dependencies=admin_only)
    async def set_setting(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], key: FromPath[str]
    ) -> Response[bytes]:
        body = await read_json(request, SetSettingRequest)
        return json_response(await service.set_setting(current_user, key, body.value, client_of(request)))

    @get("/v1/credentials", dependencies=admin_only)
    async def list_credentials(current_user: NamedDependency[CurrentUser]) -> Response[bytes]:
        return json_response(await service.list_credentials())

    @post("/v1/credentials", dependencies=admin_only)
    async def add_credential(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser]
    ) -> Response[bytes]:
        body = await read_json(request, AddCredentialRequest)
        added = await service.add_credential(current_user, body, client_of(request))
        return json_response(added, HTTPStatus.CREATED)

    @post("/v1/credentials/{credential_id:str}/rotate", dependencies=admin_only, status_code=HTTPStatus.OK)
    async def rotate_credential(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], credential_id: FromPath[str]
    ) -> Response[bytes]:
        target = parse_uuid(credential_id, "credential")
        body = await read_json(request, RotateCredentialRequest)
        return json_response(await service.rotate_credential(current_user, target, body.secret, client_of(request)))

    @post("/v1/credentials/{credential_id:str}/disable", dependencies=admin_only, status_code=HTTPStatus.OK)
    async def disable_credential(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], credential_id: FromPath[str]
    ) -> Response[bytes]:
        target = parse_uuid(credential_id, "credential")
        return json_response(await service.disable_credential(current_user, target, client_of(request)))

    @get("/v1/status", dependencies=admin_only)
    async def status(current_user: NamedDependency[CurrentUser]) -> Response[bytes]:
        return json_response(await service.status())

    return [
        list_users, get_user, list_nodes, get_node, *(node_action_route(action) for action in NODE_ACTIONS),
        list_settings, get_setting, set_setting, list_credentials, add_credential, rotate_credential,
        disable_credential, status,
    ]  # fmt: skip
