"""Signed JWTs (HS256) for users and nodes; one signer serves every role in a deployment.

Owns token encoding and the checks every verification makes: algorithm pinned to HS256, issuer,
expiry, and ``token_type`` (so a user token never passes as a node token and vice versa).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

ISSUER = "cynode"
ALGORITHM = "HS256"


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or of the wrong type; safe to say no more than that."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenSigner:
    secret: str

    def issue(self, token_type: str, subject: str, ttl: timedelta, **claims: Any) -> IssuedToken:
        now = datetime.now(UTC)
        expires_at = now + ttl
        jti = str(uuid.uuid4())
        payload = {
            **claims,
            "iss": ISSUER,
            "sub": subject,
            "token_type": token_type,
            "jti": jti,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return IssuedToken(jwt.encode(payload, self.secret, algorithm=ALGORITHM), jti, expires_at)

    def verify(self, token: str, token_type: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("invalid or expired token") from exc
        if claims.get("token_type") != token_type:
            raise InvalidTokenError("invalid or expired token")
        return claims
