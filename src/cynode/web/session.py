"""The console's browser session: one HttpOnly cookie carrying the API's own token pair, and CSRF tokens.

The console signs in through :class:`IdentityService` exactly as the CLI does, so lockout, audit and
session revocation apply unchanged; the cookie only stores the resulting access and refresh token.
Every request re-checks the access token with the API's :class:`Authenticator` (live session,
active user, admin flag from the database). When the short-lived access token has expired, the
refresh token renews the pair once per process: concurrent requests and requests still carrying
the just-retired pair share the renewal instead of replaying the refresh token, which the identity
service would rightly treat as theft and answer by ending the session.

CSRF tokens are an HMAC of the session id (``sid``) under a key derived from the token-signing
secret, so they survive renewals, need no storage and are the same in every gateway process. The
login form, which has no session yet, binds its token to a random pre-login cookie instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

from litestar import Request
from litestar.datastructures import Cookie

from cynode.contracts.identity import RefreshRequest, TokenPair
from cynode.http.problems import ProblemError
from cynode.identity.audit import ClientInfo
from cynode.identity.guard import ADMIN_REQUIRED, Authenticator, CurrentUser
from cynode.identity.sessions import refresh_token_digest
from cynode.tokens import TokenSigner

SESSION_COOKIE: Final = "cynode_session"
LOGIN_COOKIE: Final = "cynode_login"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"
CSRF_REFUSED: Final = "Missing or invalid CSRF token"
# Tokens never contain "~" (JWTs and refresh tokens are base64url with dots), so it separates them.
_SEPARATOR: Final = "~"
# How long a renewed pair is handed to requests that still present the pair it replaced.
_RENEWAL_GRACE_SECONDS: Final = 60.0
RENEWED_COOKIE_STATE: Final = "cynode_web_renewed_cookie"


class LoginRequired(Exception):
    """The request has no usable session; the console answers by sending the browser to the login page."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in person a page is rendered for."""

    user: CurrentUser
    csrf_token: str
    access_token: str
    """This request's API access token (renewed if it had to be): the console calls the chat pipeline with it."""

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin


def session_cookie_value(pair: TokenPair) -> str:
    return f"{pair.access_token}{_SEPARATOR}{pair.refresh_token}"


def _split_cookie(value: str | None) -> tuple[str, str] | None:
    access, separator, refresh = (value or "").partition(_SEPARATOR)
    if not separator or not access or not refresh:
        return None
    return access, refresh


def browser_cookie(request: Request[Any, Any, Any], name: str, value: str) -> Cookie:
    """A cookie scripts cannot read, other sites never trigger, and that needs TLS when the console has it."""
    return Cookie(
        key=name,
        value=value,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def expired_cookie(request: Request[Any, Any, Any], name: str) -> Cookie:
    cookie = browser_cookie(request, name, "")
    cookie.max_age = 0
    return cookie


class Renewals:
    """Renews each refresh token at most once per process and remembers the outcome for a short while."""

    def __init__(self, refresh: Callable[[RefreshRequest, ClientInfo], Awaitable[TokenPair]]) -> None:
        self._refresh = refresh
        self._pending: dict[bytes, asyncio.Future[TokenPair]] = {}
        self._recent: dict[bytes, tuple[float, TokenPair]] = {}

    async def renew(self, refresh_token: str, client: ClientInfo) -> TokenPair:
        """The pair replacing ``refresh_token``; raises the identity service's 401 when it cannot be renewed."""
        digest = refresh_token_digest(refresh_token)
        now = time.monotonic()
        self._recent = {key: entry for key, entry in self._recent.items() if entry[0] > now}
        if digest in self._recent:
            return self._recent[digest][1]
        pending = self._pending.get(digest)
        if pending is None:
            # A task of its own: a browser that goes away mid-renewal must not cancel it for the others.
            pending = asyncio.ensure_future(self._renew(digest, refresh_token, client))
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._pending[digest] = pending
        return await asyncio.shield(pending)

    async def _renew(self, digest: bytes, refresh_token: str, client: ClientInfo) -> TokenPair:
        try:
            pair = await self._refresh(RefreshRequest(refresh_token=refresh_token), client)
        finally:
            del self._pending[digest]
        self._recent[digest] = (time.monotonic() + _RENEWAL_GRACE_SECONDS, pair)
        return pair


class CsrfTokens:
    def __init__(self, signer: TokenSigner) -> None:
        self._key = hmac.new(signer.secret.encode(), b"cynode web console csrf", hashlib.sha256).digest()

    def _token(self, purpose: str, binding: str) -> str:
        return hmac.new(self._key, f"{purpose}|{binding}".encode(), hashlib.sha256).hexdigest()

    def for_session(self, user: CurrentUser) -> str:
        return self._token("session", str(user.session_id))

    def for_login(self, nonce: str) -> str:
        return self._token("login", nonce)

    @staticmethod
    def new_login_nonce() -> str:
        return secrets.token_urlsafe(24)

    @staticmethod
    def check(expected: str, presented: str | None) -> None:
        """403 unless ``presented`` is ``expected``; compared in constant time."""
        if not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
            raise ProblemError(HTTPStatus.FORBIDDEN, CSRF_REFUSED)


class BrowserSessions:
    """Turns a request's session cookie into a :class:`Viewer`, renewing the token pair when it is due."""

    def __init__(self, authenticator: Authenticator, renewals: Renewals, csrf: CsrfTokens) -> None:
        self._authenticator = authenticator
        self._renewals = renewals
        self._csrf = csrf

    async def viewer(self, request: Request[Any, Any, Any], client: ClientInfo, *, fresh: bool = False) -> Viewer:
        """``fresh`` reads the session from the database even when this process remembers it."""
        pair = _split_cookie(request.cookies.get(SESSION_COOKIE))
        if pair is None:
            raise LoginRequired
        access_token, refresh_token = pair
        try:
            user = await self._authenticator.authenticate(f"Bearer {access_token}", fresh=fresh)
        except ProblemError:
            user, access_token = await self._renewed_user(request, refresh_token, client, fresh=fresh)
        return Viewer(user=user, csrf_token=self._csrf.for_session(user), access_token=access_token)

    async def admin(self, request: Request[Any, Any, Any], client: ClientInfo) -> Viewer:
        viewer = await self.viewer(request, client, fresh=True)  # admin rights never come from memory
        if not viewer.is_admin:
            raise ProblemError(HTTPStatus.FORBIDDEN, ADMIN_REQUIRED)
        return viewer

    async def _renewed_user(
        self, request: Request[Any, Any, Any], refresh_token: str, client: ClientInfo, *, fresh: bool
    ) -> tuple[CurrentUser, str]:
        try:
            renewed = await self._renewals.renew(refresh_token, client)
            user = await self._authenticator.authenticate(f"Bearer {renewed.access_token}", fresh=fresh)
        except ProblemError:
            raise LoginRequired from None
        # Whatever the page answers, the browser must get the new pair (see console_headers).
        request.state[RENEWED_COOKIE_STATE] = browser_cookie(request, SESSION_COOKIE, session_cookie_value(renewed))
        return user, renewed.access_token
