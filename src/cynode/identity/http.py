"""User API routes for identity: login, refresh, logout, me, admin user management.

Handlers only translate: they read the client's address, decode the body with the shared codec
(so malformed JSON, a wrong content type or a missing field is a 400/415 problem rather than
litestar's own error), call :class:`IdentityService`, and encode its answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, TypeVar
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from cynode.context import OrchestratorContext
from cynode.contracts.identity import (
    CreateUserRequest,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    ResetPasswordRequest,
)
from cynode.http.client_address import ClientAddressResolver
from cynode.http.payloads import json_response, no_content, read_json
from cynode.http.problems import ProblemError
from cynode.identity.audit import AuthEvent, ClientInfo
from cynode.identity.guard import CURRENT_USER, CurrentUser, admin_user_provider, current_user_provider
from cynode.identity.service import IdentityService

Payload = TypeVar("Payload")


def client_info(request: Request[Any, Any, Any], addresses: ClientAddressResolver) -> ClientInfo:
    """The client's IP (``X-Forwarded-For`` only as far as trusted proxies wrote it) and user agent.

    An address that does not parse is no address: it must never reach the audit log's inet column.
    """
    peer = request.client.host if request.client else None
    ip = addresses.resolve(peer, request.headers.get("x-forwarded-for"))
    return ClientInfo(ip=ip, user_agent=request.headers.get("user-agent"))


def client_reader(ctx: OrchestratorContext) -> Callable[[Request[Any, Any, Any]], ClientInfo]:
    """How this deployment reads a request's client: through the identity settings' trusted proxies."""
    addresses = ClientAddressResolver(ctx.settings.identity.trusted_proxies)
    return lambda request: client_info(request, addresses)


def parse_user_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ProblemError(HTTPStatus.BAD_REQUEST, "Invalid user id") from None


def identity_routes(ctx: OrchestratorContext) -> Sequence[ControllerRouterHandler]:
    service = IdentityService(ctx.pool, ctx.signer, ctx.settings.identity)
    addresses = ClientAddressResolver(ctx.settings.identity.trusted_proxies)
    signed_in = {CURRENT_USER: current_user_provider(ctx)}
    admin_only = {CURRENT_USER: admin_user_provider(ctx)}

    def client_of(request: Request[Any, Any, Any]) -> ClientInfo:
        return client_info(request, addresses)

    async def read_audited(
        request: Request[Any, Any, Any], payload_type: type[Payload], event: AuthEvent, client: ClientInfo
    ) -> Payload:
        """Like read_json, but a refused body still leaves its audit row."""
        try:
            return await read_json(request, payload_type)
        except ProblemError:
            await service.record_invalid_request(event, client)
            raise

    @post("/v1/auth/login")
    async def login(request: Request[Any, Any, Any]) -> Response[bytes]:
        client = client_of(request)
        credentials = await read_audited(request, LoginRequest, AuthEvent.LOGIN_FAILURE, client)
        return json_response(await service.login(credentials, client))

    @post("/v1/auth/refresh")
    async def refresh(request: Request[Any, Any, Any]) -> Response[bytes]:
        client = client_of(request)
        refresh_request = await read_audited(request, RefreshRequest, AuthEvent.REFRESH_FAILURE, client)
        return json_response(await service.refresh(refresh_request, client))

    @post("/v1/auth/logout", dependencies=signed_in)
    async def logout(request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser]) -> Response[None]:
        logout_request = await read_json(request, LogoutRequest, empty=LogoutRequest())
        await service.logout(current_user, logout_request, client_of(request))
        return no_content()

    @get("/v1/users/me", dependencies=signed_in)
    async def me(current_user: NamedDependency[CurrentUser]) -> Response[bytes]:
        return json_response(await service.me(current_user))

    @post("/v1/users", dependencies=admin_only)
    async def create_user(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser]
    ) -> Response[bytes]:
        create_request = await read_json(request, CreateUserRequest)
        created = await service.create_user(current_user, create_request, client_of(request))
        return json_response(created, HTTPStatus.CREATED)

    def set_active_route(action: str, active: bool) -> ControllerRouterHandler:
        @post(f"/v1/users/{{user_id:str}}/{action}", dependencies=admin_only, name=f"{action}_user")
        async def set_active(
            request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], user_id: FromPath[str]
        ) -> Response[bytes]:
            user = await service.set_user_active(current_user, parse_user_id(user_id), active, client_of(request))
            return json_response(user)

        return set_active

    disable_user = set_active_route("disable", active=False)
    enable_user = set_active_route("enable", active=True)

    @post("/v1/users/{user_id:str}/reset_password", dependencies=admin_only)
    async def reset_password(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], user_id: FromPath[str]
    ) -> Response[None]:
        target = parse_user_id(user_id)
        reset_request = await read_json(request, ResetPasswordRequest)
        await service.reset_password(current_user, target, reset_request, client_of(request))
        return no_content()

    @post("/v1/users/{user_id:str}/revoke_sessions", dependencies=admin_only)
    async def revoke_sessions(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], user_id: FromPath[str]
    ) -> Response[None]:
        await service.revoke_sessions(current_user, parse_user_id(user_id), client_of(request))
        return no_content()

    @post("/v1/users/{user_id:str}/unlock", dependencies=admin_only)
    async def unlock_user(
        request: Request[Any, Any, Any], current_user: NamedDependency[CurrentUser], user_id: FromPath[str]
    ) -> Response[bytes]:
        return json_response(await service.unlock_user(current_user, parse_user_id(user_id), client_of(request)))

    return [
        login,
        refresh,
        logout,
        me,
        create_user,
        disable_user,
        enable_user,
        reset_password,
        revoke_sessions,
        unlock_user,
    ]
