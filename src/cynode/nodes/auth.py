"""Node JWTs: issued at registration, required on every other control-plane node route.

A node token carries ``token_type=node`` and the control-plane audience (signed with that
audience's own key, so user tokens never pass here and node tokens never pass user routes), the node
id as ``sub`` and the slug as ``node_slug``. Every failure is a 401, which a node manager answers by
registering again with its PSK and node secret; that includes a token for a node row that no longer
exists, or whose Worker API token an admin rotated, so a node recovers on its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus

from cynode.contracts.problem import TYPE_AUTHENTICATION
from cynode.http.problems import ProblemError
from cynode.tokens import NODE_TOKEN, InvalidTokenError, IssuedToken, TokenSigner

NODE_TOKEN_TYPE = NODE_TOKEN
MISSING_AUTHORIZATION = "Missing authorization header"
INVALID_TOKEN = "Invalid or expired token"  # noqa: S105 (a message, not a secret)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def unauthorized(detail: str) -> ProblemError:
    return ProblemError(HTTPStatus.UNAUTHORIZED, detail, problem_type=TYPE_AUTHENTICATION, headers=_CHALLENGE)


class NodeGone(ProblemError):
    """The token is valid but its node row is gone; the node should register again."""

    def __init__(self) -> None:
        super().__init__(
            HTTPStatus.UNAUTHORIZED,
            "Node is not registered; register again",
            problem_type=TYPE_AUTHENTICATION,
            headers=_CHALLENGE,
        )


@dataclass(frozen=True)
class AuthenticatedNode:
    node_id: uuid.UUID
    node_slug: str


def issue_node_token(signer: TokenSigner, node_id: uuid.UUID, node_slug: str, ttl_seconds: int) -> IssuedToken:
    return signer.issue(NODE_TOKEN_TYPE, str(node_id), timedelta(seconds=ttl_seconds), node_slug=node_slug)


def authenticate_node(signer: TokenSigner, authorization: str | None) -> AuthenticatedNode:
    """The node behind an ``Authorization: Bearer <node JWT>`` header, or a 401 problem."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized(MISSING_AUTHORIZATION)
    try:
        claims = signer.verify(token, NODE_TOKEN_TYPE)
        node_id = uuid.UUID(claims["sub"])
        node_slug = claims["node_slug"]
    except (InvalidTokenError, KeyError, ValueError, TypeError):
        raise unauthorized(INVALID_TOKEN) from None
    if not isinstance(node_slug, str):
        raise unauthorized(INVALID_TOKEN)
    return AuthenticatedNode(node_id=node_id, node_slug=node_slug)
