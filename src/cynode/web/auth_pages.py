"""Signing in and out of the console: ``/`` , ``/login`` and ``/logout``.

Login goes through the identity service exactly like ``POST /v1/auth/login`` (throttling, lockout,
audit); a refused login shows the service's own message. Logout ends the session in the database,
so the cookie's tokens are dead even if a copy survives somewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from litestar import Request, Response, get, post
from litestar.types import ControllerRouterHandler

from cynode.contracts.identity import LoginRequest, LogoutRequest
from cynode.http.problems import ProblemError
from cynode.web.console import HOME_PATH, LOGIN_PATH, Console, safe_next, see_other
from cynode.web.session import LOGIN_COOKIE, SESSION_COOKIE, browser_cookie, expired_cookie, session_cookie_value


def routes(console: Console) -> Sequence[ControllerRouterHandler]:
    def login_form(
        request: Request[Any, Any, Any],
        next_path: str | None,
        status: int = HTTPStatus.OK,
        error: str | None = None,
        handle: str = "",
    ) -> Response[str]:
        # The form's CSRF token is bound to the pre-login nonce; kept while it exists, so two open
        # login tabs both work.
        nonce = request.cookies.get(LOGIN_COOKIE) or console.csrf.new_login_nonce()
        response = console.page(
            None,
            "login.html",
            status,
            csrf_token=console.csrf.for_login(nonce),
            next_path=safe_next(next_path),
            handle=handle,
            error=error,
        )
        response.cookies.append(browser_cookie(request, LOGIN_COOKIE, nonce))
        return response

    @get("/", sync_to_thread=False)
    def home() -> Response[Any]:
        return see_other(HOME_PATH)

    @get(LOGIN_PATH, sync_to_thread=False)
    def login_page(request: Request[Any, Any, Any]) -> Response[str]:
        return login_form(request, request.query_params.get("next"))

    @post(LOGIN_PATH)
    async def login(request: Request[Any, Any, Any]) -> Response[Any]:
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        form = await console.form(request, console.csrf.for_login(nonce) if nonce else "")
        handle = form.get("handle") or ""
        try:
            pair = await console.identity.login(
                LoginRequest(handle=handle, password=form.get("password") or ""), console.client(request)
            )
        except ProblemError as problem:
            response = login_form(request, form.get("next"), problem.status, problem.detail, handle)
            response.headers.update(problem.headers)
            return response
        response = see_other(safe_next(form.get("next")))
        response.cookies.append(browser_cookie(request, SESSION_COOKIE, session_cookie_value(pair)))
        response.cookies.append(expired_cookie(request, LOGIN_COOKIE))
        return response

    @post("/logout")
    async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
        viewer = await console.viewer(request)
        await console.form(request, viewer.csrf_token)
        await console.identity.logout(viewer.user, LogoutRequest(), console.client(request))
        response = see_other(LOGIN_PATH)
        response.cookies.append(expired_cookie(request, SESSION_COOKIE))
        return response

    return [home, login_page, login, logout]
