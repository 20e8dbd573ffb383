"""Identity use cases: login, refresh, logout, current user, and admin user management.

Owns the rules between the repositories: what a login checks and in which order, how refresh
rotates and detects reuse, what each admin action revokes, and what gets audited. Clients learn
only what they need: every credential failure is the same 401, whether or not the handle exists,
and an unknown handle costs a password verification like a known one.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Final
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from cynode.contracts.identity import (
    CreateUserRequest,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    ResetPasswordRequest,
    TokenPair,
    UserResponse,
)
from cynode.db.pool import Pool
from cynode.http.problems import ProblemError
from cynode.identity import audit, rate_limit, sessions, users
from cynode.identity.audit import AuthEvent, ClientInfo, FailureReason
from cynode.identity.guard import ACCESS_TOKEN_TYPE, CurrentUser
from cynode.identity.passwords import MAX_PASSWORD_LENGTH, hash_password, password_problem, verify_password
from cynode.identity.rate_limit import AttemptKey, LoginThrottle
from cynode.identity.sessions import RevokedReason, SessionLifetime
from cynode.identity.settings import IdentitySettings
from cynode.identity.users import LoginCandidate, UserRow
from cynode.tokens import TokenSigner

log = logging.getLogger(__name__)

INVALID_CREDENTIALS: Final = "Invalid credentials"
INVALID_REFRESH_TOKEN: Final = "Invalid refresh token"  # noqa: S105 - a message, not a token
TOO_MANY_ATTEMPTS: Final = "Too many login attempts; try again later"


def user_response(user: UserRow) -> UserResponse:
    return UserResponse(
        id=user.id, handle=user.handle, email=user.email, is_active=user.is_active, is_admin=user.is_admin
    )


def _bad_request(detail: str) -> ProblemError:
    return ProblemError(HTTPStatus.BAD_REQUEST, detail)


def _credential_failure(candidate: LoginCandidate | None, password_matches: bool) -> FailureReason | None:
    if candidate is None:
        return FailureReason.USER_NOT_FOUND
    if candidate.user.is_system:
        return FailureReason.SYSTEM_USER
    if not candidate.user.is_active:
        return FailureReason.USER_INACTIVE
    if candidate.password_hash is None:
        return FailureReason.NO_PASSWORD_CREDENTIAL
    if not password_matches:
        return FailureReason.INVALID_PASSWORD
    return None


def _may_sign_in(user: UserRow) -> bool:
    return user.is_active and not user.is_system


class IdentityService:
    def __init__(self, pool: Pool, signer: TokenSigner, settings: IdentitySettings) -> None:
        self._pool = pool
        self._signer = signer
        self._settings = settings
        self._throttle = LoginThrottle(settings, signer.derive_key("login-handle"))
        self._stored_refusals = settings.audit_refusals_per_minute_per_source
        self._lifetime = SessionLifetime(settings.refresh_token_ttl_seconds, settings.session_max_lifetime_seconds)

    async def _refuse(
        self,
        conn: AsyncConnection[DictRow],
        event: AuthEvent,
        client: ClientInfo,
        reason: FailureReason,
        *,
        handle: str | None = None,
    ) -> None:
        """Audit a refused login or refresh; past the per-source threshold it is only counted.

        The row names the user of ``handle`` when there is one; a handle that names no user is
        never written down, since it may be a mistyped password.
        """
        if await audit.count_this_minute(conn, event, client.source) > self._stored_refusals:
            return
        user = None if handle is None else await users.find_login_candidate(conn, handle)
        user_id, known_handle = (None, None) if user is None else (user.user.id, user.user.handle)
        await audit.record(conn, event, client, success=False, user_id=user_id, handle=known_handle, reason=reason)

    async def record_invalid_request(self, event: AuthEvent, client: ClientInfo) -> None:
        """Audit an auth request that was refused before it could be judged (bad body, missing field)."""
        async with self._pool.connection() as conn:
            await self._refuse(conn, event, client, FailureReason.INVALID_REQUEST)

    async def login(self, credentials: LoginRequest, client: ClientInfo) -> TokenPair:
        handle, password = credentials.handle, credentials.password
        problem = users.login_handle_problem(handle) or (
            "Handle or password is too long" if len(password) > MAX_PASSWORD_LENGTH else None
        )
        if problem is None and not password:
            problem = "Handle and password are required"
        if problem is not None:
            await self.record_invalid_request(AuthEvent.LOGIN_FAILURE, client)
            raise _bad_request(problem)
        attempt = self._throttle.key(handle, client.source)
        async with self._pool.connection() as conn:
            throttled = await self._throttle.check(conn, attempt)
            if throttled is not None:
                await self._refuse(conn, AuthEvent.LOGIN_FAILURE, client, throttled.reason, handle=handle)
                raise ProblemError(
                    HTTPStatus.TOO_MANY_REQUESTS,
                    TOO_MANY_ATTEMPTS,
                    headers={"Retry-After": str(throttled.retry_after_seconds)},
                )
            candidate = await users.find_login_candidate(conn, handle)
        # Verified in every case, and without holding a pooled connection through the hashing.
        matches = await verify_password(None if candidate is None else candidate.password_hash, password)
        failure = _credential_failure(candidate, matches)
        if candidate is None or failure is not None:
            known = None if candidate is None else candidate.user
            await self._record_credential_failure(attempt, client, known, failure or FailureReason.USER_NOT_FOUND)
            raise ProblemError(HTTPStatus.UNAUTHORIZED, INVALID_CREDENTIALS)
        async with self._pool.connection() as conn, conn.transaction():
            tokens = await self._open_session(conn, candidate.user, session_id=uuid.uuid4(), started_at=None)
            await rate_limit.record_attempt(conn, attempt, rate_limit.Outcome.SUCCESS, candidate.user.id)
            await audit.record(
                conn, AuthEvent.LOGIN_SUCCESS, client, success=True, user_id=candidate.user.id, handle=handle
            )
        return tokens

    async def _record_credential_failure(
        self, attempt: AttemptKey, client: ClientInfo, user: UserRow | None, reason: FailureReason
    ) -> None:
        """Count the failure against the throttle, and audit the lockout it starts, if it starts one."""
        async with self._pool.connection() as conn, conn.transaction():
            user_id = None if user is None else user.id
            await rate_limit.record_attempt(conn, attempt, rate_limit.Outcome.CREDENTIAL_FAILURE, user_id)
            await self._refuse(conn, AuthEvent.LOGIN_FAILURE, client, reason, handle=attempt.handle)
            locked = await self._throttle.check(conn, attempt)
            if locked is not None:
                await audit.record(
                    conn,
                    AuthEvent.LOCKOUT_STARTED,
                    client,
                    success=True,
                    user_id=user_id,
                    handle=None if user is None else user.handle,
                    reason=f"{locked.reason} for {locked.retry_after_seconds}s",
                )

    async def unlock_user(self, admin: CurrentUser, user_id: UUID, client: ClientInfo) -> UserResponse:
        """Lift the lockout and slow-down of a user's handle (failures so far stop counting)."""
        async with self._pool.connection() as conn, conn.transaction():
            target = await self._managed_user(conn, user_id)
            await rate_limit.clear_lockout(conn, target, client, by=admin.handle)
        return user_response(target)

    async def refresh(self, request: RefreshRequest, client: ClientInfo) -> TokenPair:
        if not request.refresh_token:
            await self.record_invalid_request(AuthEvent.REFRESH_FAILURE, client)
            raise _bad_request("Refresh token is required")
        digest = sessions.refresh_token_digest(request.refresh_token)
        async with self._pool.connection() as conn:
            async with conn.transaction():
                rotated = await sessions.rotate(conn, digest)
                if rotated is not None and _may_sign_in(rotated.user):
                    tokens = await self._open_session(
                        conn, rotated.user, session_id=rotated.family_id, started_at=rotated.session_started_at
                    )
                    await audit.record(
                        conn,
                        AuthEvent.REFRESH_SUCCESS,
                        client,
                        success=True,
                        user_id=rotated.user.id,
                        handle=rotated.user.handle,
                    )
                    return tokens
            async with conn.transaction():
                await self._refuse_refresh(conn, digest, rotated, client)
        raise ProblemError(HTTPStatus.UNAUTHORIZED, INVALID_REFRESH_TOKEN)

    async def _refuse_refresh(
        self,
        conn: AsyncConnection[DictRow],
        digest: bytes,
        rotated: sessions.RotatedSession | None,
        client: ClientInfo,
    ) -> None:
        """Revoke what a refused refresh calls for, and audit why it was refused."""
        if rotated is not None:
            # A live session whose user was disabled in the meantime: end it for good.
            await sessions.revoke_session(conn, rotated.user.id, rotated.family_id, RevokedReason.USER_DISABLED)
            user_id: UUID | None = rotated.user.id
            reason = FailureReason.USER_INACTIVE
        else:
            presented = await sessions.find_presented(conn, digest)
            user_id = None if presented is None else presented.user_id
            reason = FailureReason.INVALID_REFRESH_TOKEN
            if presented is not None and presented.revoked_reason == RevokedReason.ROTATED:
                # A retired token came back: it was copied, or raced its own refresh. Either way
                # the session can no longer be trusted, including the tokens that replaced it.
                await sessions.revoke_session(
                    conn, presented.user_id, presented.family_id, RevokedReason.REUSE_DETECTED
                )
                reason = FailureReason.REFRESH_TOKEN_REUSED
                log.warning("refresh_token_reused", extra={"user_id": str(presented.user_id)})
        if reason is FailureReason.INVALID_REFRESH_TOKEN:
            await self._refuse(conn, AuthEvent.REFRESH_FAILURE, client, reason)
        else:
            await audit.record(conn, AuthEvent.REFRESH_FAILURE, client, success=False, user_id=user_id, reason=reason)

    async def _open_session(
        self, conn: AsyncConnection[DictRow], user: UserRow, *, session_id: UUID, started_at: datetime | None
    ) -> TokenPair:
        """Store a new refresh token for session ``session_id`` and issue the token pair."""
        refresh_token = sessions.new_refresh_token()
        await sessions.insert_session_row(
            conn, user.id, session_id, sessions.refresh_token_digest(refresh_token), self._lifetime, started_at
        )
        access_ttl = self._settings.access_token_ttl_seconds
        access = self._signer.issue(
            ACCESS_TOKEN_TYPE,
            str(user.id),
            timedelta(seconds=access_ttl),
            handle=user.handle,
            sid=str(session_id),
        )
        return TokenPair(access_token=access.token, refresh_token=refresh_token, expires_in=access_ttl)

    async def logout(self, user: CurrentUser, request: LogoutRequest, client: ClientInfo) -> None:
        """End the caller's session, and the one the given refresh token belongs to if it is the caller's."""
        async with self._pool.connection() as conn, conn.transaction():
            await sessions.revoke_session(conn, user.id, user.session_id, RevokedReason.LOGOUT)
            if request.refresh_token:
                presented = await sessions.find_presented(conn, sessions.refresh_token_digest(request.refresh_token))
                if presented is not None and presented.user_id == user.id:
                    await sessions.revoke_session(conn, user.id, presented.family_id, RevokedReason.LOGOUT)
            await audit.record(conn, AuthEvent.LOGOUT, client, success=True, user_id=user.id, handle=user.handle)

    async def me(self, user: CurrentUser) -> UserResponse:
        async with self._pool.connection() as conn:
            row = await users.get_user(conn, user.id)
        if row is None:
            # The guard saw the user a moment ago; users are never deleted, so this is a broken invariant.
            raise RuntimeError("authenticated user vanished")
        return user_response(row)

    async def create_user(self, admin: CurrentUser, request: CreateUserRequest, client: ClientInfo) -> UserResponse:
        problem = (
            users.handle_problem(request.handle)
            or (None if request.email is None else users.email_problem(request.email))
            or password_problem(request.password)
        )
        if problem is not None:
            raise _bad_request(problem)
        password_hash = await hash_password(request.password)
        async with self._pool.connection() as conn, conn.transaction():
            created = await users.insert_user(conn, request.handle, email=request.email, is_admin=request.is_admin)
            if created is None:
                raise ProblemError(HTTPStatus.CONFLICT, "A user with this handle or email already exists")
            await users.set_password_hash(conn, created.id, password_hash)
            await self._record_admin_action(conn, AuthEvent.USER_CREATED, admin, created, client)
        return user_response(created)

    async def set_user_active(
        self, admin: CurrentUser, user_id: UUID, active: bool, client: ClientInfo
    ) -> UserResponse:
        """Enable or disable a user; disabling ends every session of theirs at once."""
        if not active and user_id == admin.id:
            raise _bad_request("Admins cannot disable their own account")
        async with self._pool.connection() as conn, conn.transaction():
            target = await self._managed_user(conn, user_id)
            changed = await users.set_active(conn, user_id, active)
            if changed is None:
                # Already as asked (perhaps by a concurrent admin): nothing to do or audit.
                return user_response(dataclasses.replace(target, is_active=active))
            if active:
                await self._record_admin_action(conn, AuthEvent.USER_REENABLED, admin, changed, client)
            else:
                await sessions.revoke_all_sessions(conn, user_id, RevokedReason.USER_DISABLED)
                await self._record_admin_action(conn, AuthEvent.USER_DISABLED, admin, changed, client)
        return user_response(changed)

    async def reset_password(
        self, admin: CurrentUser, user_id: UUID, request: ResetPasswordRequest, client: ClientInfo
    ) -> None:
        """Replace a user's password; their sessions end, since whoever held them may not know the new one."""
        problem = password_problem(request.password)
        if problem is not None:
            raise _bad_request(problem)
        password_hash = await hash_password(request.password)
        async with self._pool.connection() as conn, conn.transaction():
            target = await self._managed_user(conn, user_id)
            await users.set_password_hash(conn, target.id, password_hash)
            await sessions.revoke_all_sessions(conn, target.id, RevokedReason.PASSWORD_RESET)
            await self._record_admin_action(conn, AuthEvent.PASSWORD_RESET, admin, target, client)

    async def revoke_sessions(self, admin: CurrentUser, user_id: UUID, client: ClientInfo) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            target = await self._managed_user(conn, user_id)
            await sessions.revoke_all_sessions(conn, target.id, RevokedReason.ADMIN_REVOKED)
            await self._record_admin_action(conn, AuthEvent.SESSION_REVOKED, admin, target, client)

    async def _managed_user(self, conn: AsyncConnection[DictRow], user_id: UUID) -> UserRow:
        """The user an admin action targets: 404 when unknown; the system user is not managed."""
        target = await users.get_user(conn, user_id)
        if target is None:
            raise ProblemError(HTTPStatus.NOT_FOUND, "User not found")
        if target.is_system:
            raise _bad_request("The system user cannot be changed")
        return target

    async def _record_admin_action(
        self, conn: AsyncConnection[DictRow], event: AuthEvent, admin: CurrentUser, target: UserRow, client: ClientInfo
    ) -> None:
        await audit.record(
            conn, event, client, success=True, user_id=target.id, handle=target.handle, reason=f"by {admin.handle}"
        )
