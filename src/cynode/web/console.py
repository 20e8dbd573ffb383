"""The console's shared parts and its router: what every page module builds on.

:class:`Console` bundles the services the pages call (the same :class:`IdentityService`,
:class:`TaskService`, :class:`AdminService` and :class:`ChatApi` the API uses, so authorization,
validation and audit are the API's), the browser session, CSRF checking and rendering. A page
module is a function from a Console to its route handlers; a new area adds one module, one entry in
:data:`NAVIGATION` and its templates. Errors raised by the services become HTML error pages with the same status
code; a request without a usable session is sent to the login page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import quote

from litestar import Request, Response, Router
from litestar.datastructures import FormMultiDict
from litestar.response import Redirect
from litestar.types import ControllerRouterHandler

from cynode.admin.service import AdminService
from cynode.chat.http import ChatApi
from cynode.context import OrchestratorContext
from cynode.http.app import Readiness
from cynode.http.problems import ProblemError
from cynode.identity.audit import ClientInfo
from cynode.identity.guard import Authenticator
from cynode.identity.http import client_reader
from cynode.identity.service import IdentityService
from cynode.tasks.live_output import LiveOutput
from cynode.tasks.service import TaskService
from cynode.web.headers import console_headers
from cynode.web.render import Pages, asset_routes, load_assets
from cynode.web.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    BrowserSessions,
    CsrfTokens,
    LoginRequired,
    Renewals,
    Viewer,
    expired_cookie,
)

FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
LOGIN_PATH: Final = "/login"
HOME_PATH: Final = "/tasks"


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    admin_only: bool = False


NAVIGATION: Final = (
    NavItem("Tasks", "/tasks"),
    NavItem("Chat", "/chat"),
    NavItem("Status", "/status"),
    NavItem("Users", "/admin/users", admin_only=True),
    NavItem("Nodes", "/admin/nodes", admin_only=True),
    NavItem("Settings", "/admin/settings", admin_only=True),
    NavItem("Credentials", "/admin/credentials", admin_only=True),
)
"""The console's menu; admin entries are never shown to a non-admin (their pages answer 403)."""


def safe_next(path: str | None) -> str:
    """Where to go after login: a path on this console only, never another site."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return HOME_PATH


def see_other(path: str) -> Redirect:
    return Redirect(path, status_code=303)


@dataclass(frozen=True)
class Console:
    context: OrchestratorContext
    readiness: Readiness
    pages: Pages
    sessions: BrowserSessions
    csrf: CsrfTokens
    identity: IdentityService
    tasks: TaskService
    admin_service: AdminService
    chat: ChatApi
    live_output: LiveOutput

    def client(self, request: Request[Any, Any, Any]) -> ClientInfo:
        return client_reader(self.context)(request)

    async def viewer(self, request: Request[Any, Any, Any]) -> Viewer:
        return await self.sessions.viewer(request, self.client(request))

    async def admin(self, request: Request[Any, Any, Any]) -> Viewer:
        return await self.sessions.admin(request, self.client(request))

    async def form(self, request: Request[Any, Any, Any], csrf_token: str) -> FormMultiDict:
        """The posted form, once its CSRF token is ``csrf_token``: 415 for another body type, 403 without the token."""
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != FORM_MEDIA_TYPE:
            raise ProblemError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type must be {FORM_MEDIA_TYPE}")
        form = await request.form()
        self.csrf.check(csrf_token, form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER))
        return form

    def page(self, viewer: Viewer | None, template: str, status: int = HTTPStatus.OK, **context: Any) -> Response[str]:
        navigation = [item for item in NAVIGATION if viewer is not None and (viewer.is_admin or not item.admin_only)]
        return self.pages.render(template, status, viewer=viewer, navigation=navigation, **context)


def _exception_handlers(console: Console) -> Mapping[Any, Callable[..., Response[Any]]]:
    def login_required(request: Request[Any, Any, Any], _: LoginRequired) -> Response[Any]:
        # Back to the page after login; a form post cannot be replayed, so it leads home instead.
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = HOME_PATH
        redirect = see_other(f"{LOGIN_PATH}?next={quote(target, safe='')}")
        redirect.cookies.append(expired_cookie(request, SESSION_COOKIE))
        return redirect

    def problem_page(_: Request[Any, Any, Any], exc: ProblemError) -> Response[str]:
        response = console.page(
            None, "error.html", exc.status, title=exc.title or HTTPStatus(exc.status).phrase, detail=exc.detail
        )
        response.headers.update(exc.headers)
        return response

    return {LoginRequired: login_required, ProblemError: problem_page}


def console_router(
    ctx: OrchestratorContext,
    readiness: Readiness,
    chat: ChatApi,
    live_output: LiveOutput,
    page_modules: Sequence[Callable[[Console], Sequence[ControllerRouterHandler]]],
) -> Router:
    """The console at ``/``: the routes of ``page_modules`` plus static assets, under the console's headers."""
    identity = IdentityService(ctx.pool, ctx.signer, ctx.settings.identity)
    csrf = CsrfTokens(ctx.signer)
    assets = load_assets()
    console = Console(
        context=ctx,
        readiness=readiness,
        pages=Pages(assets),
        sessions=BrowserSessions(Authenticator(ctx.pool, ctx.signer, ctx.auth_cache), Renewals(identity.refresh), csrf),
        csrf=csrf,
        identity=identity,
        tasks=TaskService(ctx.pool, ctx.settings.dispatch.sandbox_image),
        admin_service=AdminService(ctx),
        chat=chat,
        live_output=live_output,
    )
    handlers = [handler for module in page_modules for handler in module(console)]
    return Router(
        path="/",
        route_handlers=[*handlers, *asset_routes(assets)],
        middleware=[console_headers],
        exception_handlers=dict(_exception_handlers(console)),
        include_in_schema=False,
    )
