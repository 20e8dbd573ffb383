"""The shared access-token check: what it refuses, and how another domain's routes use it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar import Response, get
from litestar.di import NamedDependency

from cynode.contracts.codec import encode
from cynode.http.app import build_app
from cynode.http.server import ServedApp
from cynode.identity.guard import CURRENT_USER, CurrentUser, admin_user_provider, current_user_provider
from cynode.tokens import TokenSigner
from tests.fixtures.identity import ADMIN_HANDLE, Session, assert_problem, bearer, create_user, login
from tests.fixtures.stack import RunningStack

MISSING = "Missing authorization header"
INVALID = "Invalid or expired token"


def signer_of(stack: RunningStack) -> TokenSigner:
    context = stack.stack.context
    assert context is not None
    return context.signer


def refused(response: httpx.Response, detail: str) -> None:
    assert assert_problem(response, 401)["detail"] == detail
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic YWRtaW46YWRtaW4xMjM=", "Token abc"],
)
def test_a_missing_or_malformed_header_is_refused(gateway: httpx.Client, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    refused(gateway.get("/v1/users/me", headers=headers), MISSING)


def test_the_scheme_is_case_insensitive(gateway: httpx.Client, admin_session: Session) -> None:
    response = gateway.get("/v1/users/me", headers={"Authorization": f"bEaReR {admin_session.access_token}"})
    assert response.status_code == 200


def test_a_refresh_token_is_not_an_access_token(gateway: httpx.Client, admin_session: Session) -> None:
    refused(gateway.get("/v1/users/me", headers=bearer(admin_session.refresh_token)), INVALID)


def test_garbage_is_refused(gateway: httpx.Client) -> None:
    refused(gateway.get("/v1/users/me", headers=bearer("not.a.jwt")), INVALID)


def claims_of(stack: RunningStack, session: Session) -> dict[str, Any]:
    return signer_of(stack).verify(session.access_token, "access")


@pytest.mark.parametrize(
    ("case", "forge"),
    [
        ("signed with another key", lambda signer, c: TokenSigner("another-signing-key-of-a-decent-length").issue(
            "access", c["sub"], timedelta(minutes=5), handle=c["handle"], sid=c["sid"])),
        ("expired", lambda signer, c: signer.issue(
            "access", c["sub"], timedelta(seconds=-5), handle=c["handle"], sid=c["sid"])),
        ("a node token", lambda signer, c: signer.issue(
            "node", c["sub"], timedelta(minutes=5), handle=c["handle"], sid=c["sid"])),
        ("no session id", lambda signer, c: signer.issue(
            "access", c["sub"], timedelta(minutes=5), handle=c["handle"])),
        ("a session id that is no session", lambda signer, c: signer.issue(
            "access", c["sub"], timedelta(minutes=5), handle=c["handle"], sid=str(uuid.uuid4()))),
        ("a subject that is not a uuid", lambda signer, c: signer.issue(
            "access", "admin", timedelta(minutes=5), handle=c["handle"], sid=c["sid"])),
        ("another user's subject", lambda signer, c: signer.issue(
            "access", str(uuid.uuid4()), timedelta(minutes=5), handle=c["handle"], sid=c["sid"])),
    ],
)  # fmt: skip
def test_forged_or_stale_access_tokens_are_refused(
    gateway: httpx.Client, gateway_stack: RunningStack, admin_session: Session, case: str, forge: Any
) -> None:
    token = forge(signer_of(gateway_stack), claims_of(gateway_stack, admin_session)).token
    refused(gateway.get("/v1/users/me", headers=bearer(token)), INVALID)


def test_admin_rights_follow_the_database_at_once(gateway: httpx.Client, admin_session: Session, db: Any) -> None:
    create_user(gateway, admin_session, "promoted")
    promoted = login(gateway, "promoted", "user-test-password")
    assert gateway.get("/v1/users/me", headers=promoted.headers).status_code == 200  # now remembered
    assert assert_problem(gateway.post("/v1/users", json={}, headers=promoted.headers), 403)["detail"] == (
        "Admin required"
    )
    db.execute("UPDATE users SET is_admin = true WHERE handle = 'promoted'")
    response = gateway.post(
        "/v1/users", json={"handle": "made-by-promoted", "password": "long-enough-pw"}, headers=promoted.headers
    )
    assert response.status_code == 201, response.text
    db.execute("UPDATE users SET is_admin = false WHERE handle = 'promoted'")
    assert_problem(gateway.post("/v1/users", json={}, headers=promoted.headers), 403)


@pytest.fixture
def other_domain(gateway_stack: RunningStack) -> Iterator[httpx.Client]:
    """An app of another domain, sharing the stack's context, guarding its routes with the providers."""
    context = gateway_stack.stack.context
    assert context is not None

    def as_json(user: CurrentUser) -> Response[bytes]:
        body = {"id": str(user.id), "handle": user.handle, "is_admin": user.is_admin, "sid": str(user.session_id)}
        return Response(encode(body), media_type="application/json")

    @get("/v1/widgets/mine", dependencies={CURRENT_USER: current_user_provider(context)})
    async def mine(current_user: NamedDependency[CurrentUser]) -> Response[bytes]:
        return as_json(current_user)

    @get("/v1/widgets/admin", dependencies={CURRENT_USER: admin_user_provider(context)})
    async def admin_only(current_user: NamedDependency[CurrentUser]) -> Response[bytes]:
        return as_json(current_user)

    async def ready() -> None:
        return None

    served = ServedApp(
        "widgets", build_app(route_handlers=[mine, admin_only], readiness=ready, max_body_bytes=1024), "127.0.0.1", 0
    )
    gateway_stack.run(served.start())
    try:
        with httpx.Client(base_url=served.base_url, timeout=30) as client:
            yield client
    finally:
        gateway_stack.run(served.stop())


def test_another_domain_gets_the_current_user(
    other_domain: httpx.Client, gateway: httpx.Client, gateway_stack: RunningStack, admin_session: Session, db: Any
) -> None:
    claims = claims_of(gateway_stack, admin_session)
    expected = {"id": claims["sub"], "handle": ADMIN_HANDLE, "is_admin": True, "sid": claims["sid"]}
    assert other_domain.get("/v1/widgets/mine", headers=admin_session.headers).json() == expected
    assert other_domain.get("/v1/widgets/admin", headers=admin_session.headers).json() == expected
    refused(other_domain.get("/v1/widgets/mine"), MISSING)

    create_user(gateway, admin_session, "plain")
    plain = login(gateway, "plain", "user-test-password")
    assert other_domain.get("/v1/widgets/mine", headers=plain.headers).json()["is_admin"] is False
    assert_problem(other_domain.get("/v1/widgets/admin", headers=plain.headers), 403)

    assert gateway.post("/v1/auth/logout", headers=plain.headers).status_code == 204
    refused(other_domain.get("/v1/widgets/mine", headers=plain.headers), INVALID)
