"""User API authentication and user-management payloads (`/v1/auth/*`, `/v1/users/*`)."""

from typing import Literal
from uuid import UUID

import msgspec

__all__ = [
    "CreateUserRequest",
    "LoginRequest",
    "LogoutRequest",
    "RefreshRequest",
    "ResetPasswordRequest",
    "TokenPair",
    "UserResponse",
]


class LoginRequest(msgspec.Struct, kw_only=True):
    """Body of POST /v1/auth/login."""

    handle: str
    password: str


class TokenPair(msgspec.Struct, kw_only=True):
    """Response of login and refresh: a short-lived access token and the rotating refresh token."""

    access_token: str
    refresh_token: str
    # Always sent, although it never varies: OAuth-style clients read it.
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - an auth scheme name, not a secret
    expires_in: int


class RefreshRequest(msgspec.Struct, kw_only=True):
    """Body of POST /v1/auth/refresh."""

    refresh_token: str


class LogoutRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Body of POST /v1/auth/logout; logout ends the caller's session with or without the refresh token."""

    refresh_token: str | None = None


class UserResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A user as shown by GET /v1/users/me and the admin endpoints."""

    id: UUID
    handle: str
    email: str | None = None
    is_active: bool
    is_admin: bool


class CreateUserRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Body of the admin create-user call."""

    handle: str
    password: str
    email: str | None = None
    is_admin: bool = False


class ResetPasswordRequest(msgspec.Struct, kw_only=True):
    """Body of the admin reset-password call: the user's new password."""

    password: str
