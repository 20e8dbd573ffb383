"""Who is calling: the access-token check every authenticated gateway route shares.

A request is authenticated when it carries ``Authorization: Bearer <access token>`` whose
signature, issuer, expiry and ``token_type`` verify, AND whose session (``sid``) is still live in
the database AND whose user is active. ``is_admin`` and ``handle`` come from the database, not
from the token. Both checks are remembered in :mod:`cynode.identity.auth_cache`, which forgets the
sessions the moment anything about a user or a session changes: at once for a change this process
commits, within the milliseconds a notification takes for one made elsewhere. Admin routes never
trust the remembered session: they read it afresh, so a demotion holds on the very next admin
request wherever it was made (even by hand in SQL).

How another domain's routes use it: give the handler a parameter named ``current_user`` typed
:class:`CurrentUser` and register the provider under that name, on the handler or on a Router::

    from cynode.identity.guard import CURRENT_USER, CurrentUser, current_user_provider

    def task_routes(ctx: OrchestratorContext) -> list[ControllerRouterHandler]:
        @get("/v1/tasks/{task_id:str}", dependencies={CURRENT_USER: current_user_provider(ctx)})
        async def get_task(current_user: NamedDependency[CurrentUser], task_id: FromPath[str]) -> Response[bytes]:
            ...  # a task current_user.id does not own is 404, never 403

        return [get_task]

(``NamedDependency`` from ``litestar.di``, ``FromPath`` from ``litestar.params``; a Router's
``dependencies`` work the same way for a group of routes.)

``admin_user_provider(ctx)`` is the same, but answers 403 to a valid non-admin caller. A missing
or malformed header is 401 ``Missing authorization header``; anything else wrong with the token
or its session is 401 ``Invalid or expired token``. Both carry ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final
from uuid import UUID

from litestar import Request
from litestar.di import Provide

from cynode.context import OrchestratorContext
from cynode.db.pool import Pool
from cynode.http.problems import ProblemError
from cynode.identity import sessions
from cynode.identity.auth_cache import AuthCache, VerifiedToken
from cynode.tokens import USER_ACCESS_TOKEN, InvalidTokenError, TokenSigner

CURRENT_USER: Final = "current_user"
"""The dependency name handlers declare to receive the :class:`CurrentUser`."""

ACCESS_TOKEN_TYPE: Final = USER_ACCESS_TOKEN
MISSING_AUTHORIZATION: Final = "Missing authorization header"
INVALID_TOKEN: Final = "Invalid or expired token"  # noqa: S105 - a message, not a token
ADMIN_REQUIRED: Final = "Admin required"

_CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class CurrentUser:
    id: UUID
    handle: str
    is_admin: bool
    session_id: UUID
    """The login session (``sid``) the access token belongs to; logout ends exactly this one."""


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(HTTPStatus.UNAUTHORIZED, detail, headers=_CHALLENGE)


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized(MISSING_AUTHORIZATION)
    return token


def _uuid_claim(claims: dict[str, Any], name: str) -> UUID:
    value = claims.get(name)
    if not isinstance(value, str):
        raise _unauthorized(INVALID_TOKEN)
    try:
        return UUID(value)
    except ValueError:
        raise _unauthorized(INVALID_TOKEN) from None


class Authenticator:
    def __init__(self, pool: Pool, signer: TokenSigner, cache: AuthCache) -> None:
        self._pool = pool
        self._signer = signer
        self._cache = cache

    async def authenticate(self, authorization: str | None, *, fresh: bool = False) -> CurrentUser:
        """The caller named by an ``Authorization`` header value; 401 problem when there is none.

        ``fresh`` reads the session and user from the database even when they are remembered.
        """
        token = self._verified(bearer_token(authorization))
        user = None if fresh else self._cache.live_session(token.user_id, token.session_id)
        if user is None:
            generation = self._cache.generation
            async with self._pool.connection() as conn:
                user = await sessions.live_session_user(conn, token.user_id, token.session_id)
            if user is None:
                raise _unauthorized(INVALID_TOKEN)
            self._cache.remember_session(token.user_id, token.session_id, user, generation=generation)
        return CurrentUser(id=user.id, handle=user.handle, is_admin=user.is_admin, session_id=token.session_id)

    def _verified(self, token: str) -> VerifiedToken:
        verified = self._cache.verified_token(token)
        if verified is not None:
            return verified
        try:
            claims = self._signer.verify(token, ACCESS_TOKEN_TYPE)
        except InvalidTokenError:
            raise _unauthorized(INVALID_TOKEN) from None
        verified = VerifiedToken(
            user_id=_uuid_claim(claims, "sub"), session_id=_uuid_claim(claims, "sid"), expires_at=float(claims["exp"])
        )
        self._cache.remember_token(token, verified)
        return verified


def current_user_provider(ctx: OrchestratorContext) -> Provide:
    """Dependency yielding the authenticated :class:`CurrentUser` (401 otherwise)."""
    authenticator = Authenticator(ctx.pool, ctx.signer, ctx.auth_cache)

    async def provide_current_user(request: Request[Any, Any, Any]) -> CurrentUser:
        return await authenticator.authenticate(request.headers.get("authorization"))

    return Provide(provide_current_user)


def admin_user_provider(ctx: OrchestratorContext) -> Provide:
    """Dependency yielding the authenticated :class:`CurrentUser` when an admin (401, or 403 otherwise)."""
    authenticator = Authenticator(ctx.pool, ctx.signer, ctx.auth_cache)

    async def provide_admin_user(request: Request[Any, Any, Any]) -> CurrentUser:
        user = await authenticator.authenticate(request.headers.get("authorization"), fresh=True)
        if not user.is_admin:
            raise ProblemError(HTTPStatus.FORBIDDEN, ADMIN_REQUIRED)
        return user

    return Provide(provide_admin_user)
