"""Admin pages for users: the list (by handle, paged), create a user, then disable, enable or reset the
password of one (``cynode user list|create|disable|enable|reset-password``).

Every page requires an admin (403 for anyone else, and the menu never links here for them); each
action is the identity service's admin action, so it is audited and revokes sessions like the API.
The list is the admin API's users list.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.types import ControllerRouterHandler

from cynode.contracts.identity import CreateUserRequest, ResetPasswordRequest
from cynode.http.problems import ProblemError
from cynode.identity import users
from cynode.identity.http import parse_user_id
from cynode.identity.service import user_response
from cynode.web.console import Console, see_other
from cynode.web.session import Viewer

USERS_PATH: Final = "/admin/users"
USERS_PER_PAGE: Final = 50
NOTICES: Final = {
    "created": "User created.",
    "disabled": "User disabled; their sessions have ended.",
    "enabled": "User enabled.",
    "password_reset": "Password reset; their sessions have ended.",
}


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    identity = console.identity

    async def users_page(
        viewer: Viewer, cursor: str | None = None, status: int = HTTPStatus.OK, error: str | None = None, **values: Any
    ) -> Response[str]:
        listed = await console.admin_service.list_users(cursor=cursor, limit=USERS_PER_PAGE)
        return console.page(
            viewer,
            "admin_users.html",
            status,
            error=error,
            values=values,
            users=listed.users,
            next_cursor=listed.next_cursor,
            first_page=cursor is None,
        )

    @get(USERS_PATH)
    async def user_admin(request: Request[Any, Any, Any]) -> Response[str]:
        viewer = await console.admin(request)
        return await users_page(viewer, request.query_params.get("cursor") or None)

    @post(USERS_PATH)
    async def create_user(request: Request[Any, Any, Any]) -> Response[Any]:
        viewer = await console.admin(request)
        form = await console.form(request, viewer.csrf_token)
        handle = form.get("handle") or ""
        email = (form.get("email") or "").strip() or None
        create_request = CreateUserRequest(
            handle=handle, password=form.get("password") or "", email=email, is_admin=form.get("is_admin") == "on"
        )
        try:
            created = await identity.create_user(viewer.user, create_request, console.client(request))
        except ProblemError as problem:
            return await users_page(viewer, None, problem.status, problem.detail, handle=handle, email=email or "")
        return see_other(f"{USERS_PATH}/{created.id}?notice=created")

    @get(f"{USERS_PATH}/{{user_id:str}}")
    async def user_detail(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[str]:
        viewer = await console.admin(request)
        async with console.context.pool.connection() as conn:
            user = await users.get_user(conn, parse_user_id(user_id))
        if user is None or user.is_system:
            raise ProblemError(HTTPStatus.NOT_FOUND, "User not found")
        notice = NOTICES.get(request.query_params.get("notice") or "")
        return console.page(viewer, "admin_user.html", user=user_response(user), notice=notice)

    def set_active_route(action: str, active: bool) -> ControllerRouterHandler:
        @post(f"{USERS_PATH}/{{user_id:str}}/{action}", name=f"web_{action}_user")
        async def set_active(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
            viewer = await console.admin(request)
            await console.form(request, viewer.csrf_token)
            changed = await identity.set_user_active(
                viewer.user, parse_user_id(user_id), active, console.client(request)
            )
            return see_other(f"{USERS_PATH}/{changed.id}?notice={action}d")

        return set_active

    @post(f"{USERS_PATH}/{{user_id:str}}/reset_password")
    async def reset_password(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[Any]:
        viewer = await console.admin(request)
        form = await console.form(request, viewer.csrf_token)
        target = parse_user_id(user_id)
        reset = ResetPasswordRequest(password=form.get("password") or "")
        await identity.reset_password(viewer.user, target, reset, console.client(request))
        return see_other(f"{USERS_PATH}/{target}?notice=password_reset")

    return [
        user_admin,
        create_user,
        user_detail,
        set_active_route("disable", active=False),
        set_active_route("enable", active=True),
        reset_password,
    ]
