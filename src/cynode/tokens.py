"""Signed JWTs (HS256) for users and nodes; one configured secret serves every role in a deployment.

Owns token encoding and the checks every verification makes: algorithm pinned to HS256, issuer,
expiry, audience and ``token_type``. User and node tokens are kept apart twice: each token type
belongs to one audience, each audience has its own signing key derived from the secret and its own
``aud`` claim, so a token of one audience fails the other's signature check before any claim is
read. The secret must be at least :data:`MIN_SECRET_BYTES` long; a shorter one is refused when the
signer is made (at start-up).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import jwt

from cynode.settings import ENV_PREFIX, SettingsError

ISSUER: Final = "cynode"
ALGORITHM: Final = "HS256"
MIN_SECRET_BYTES: Final = 32


class Audience(StrEnum):
    USER_API = "cynode-user-api"
    CONTROL_PLANE = "cynode-control-plane"


USER_ACCESS_TOKEN: Final = "access"  # noqa: S105 - a token type, not a token
NODE_TOKEN: Final = "node"  # noqa: S105 - a token type, not a token
_AUDIENCES: Final = {USER_ACCESS_TOKEN: Audience.USER_API, NODE_TOKEN: Audience.CONTROL_PLANE}


def audience_of(token_type: str) -> Audience:
    try:
        return _AUDIENCES[token_type]
    except KeyError:
        raise ValueError(f"unknown token type {token_type!r}") from None


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or of the wrong type; safe to say no more than that."""


class WeakSecretError(SettingsError):
    """The configured signing secret is too short to resist guessing."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenSigner:
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret.encode("utf-8")) < MIN_SECRET_BYTES:
            raise WeakSecretError(
                f"the JWT secret ({ENV_PREFIX}JWT_SECRET or {ENV_PREFIX}JWT_SECRET_FILE) must be at least "
                f"{MIN_SECRET_BYTES} bytes long; leave both unset to have one generated"
            )

    def derive_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` alone, derived from the secret (never the secret itself)."""
        return hmac.new(self.secret.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).digest()

    def _key(self, audience: Audience) -> bytes:
        return self.derive_key(f"jwt:{audience.value}")

    def issue(self, token_type: str, subject: str, ttl: timedelta, **claims: Any) -> IssuedToken:
        audience = audience_of(token_type)
        now = datetime.now(UTC)
        expires_at = now + ttl
        jti = str(uuid.uuid4())
        payload = {
            **claims,
            "iss": ISSUER,
            "aud": audience.value,
            "sub": subject,
            "token_type": token_type,
            "jti": jti,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return IssuedToken(jwt.encode(payload, self._key(audience), algorithm=ALGORITHM), jti, expires_at)

    def verify(self, token: str, token_type: str) -> dict[str, Any]:
        audience = audience_of(token_type)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key(audience),
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                audience=audience.value,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("invalid or expired token") from exc
        if claims.get("token_type") != token_type:
            raise InvalidTokenError("invalid or expired token")
        return claims
