"""Acceptance: login, refresh, logout and current user (features/orchestrator/initial_auth.feature)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
from pytest_bdd import parsers, scenarios, then, when

from tests.fixtures.identity import Session, assert_problem, bearer
from tests.fixtures.stack import RunningStack

scenarios("orchestrator/initial_auth.feature")


def access_claims(stack: RunningStack, access_token: str) -> dict[str, Any]:
    context = stack.stack.context
    assert context is not None
    return context.signer.verify(access_token, "access")


@when(parsers.parse('I login as "{handle}" with password "{password}"'), target_fixture="token_response")
def login_with_password(gateway: httpx.Client, handle: str, password: str) -> httpx.Response:
    return gateway.post("/v1/auth/login", json={"handle": handle, "password": password})


@then("I receive an access token")
def receive_access_token(
    gateway: httpx.Client, gateway_stack: RunningStack, db: Any, token_response: httpx.Response
) -> None:
    assert token_response.status_code == 200, token_response.text
    assert token_response.headers["content-type"] == "application/json"
    body = token_response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    claims = access_claims(gateway_stack, body["access_token"])
    admin_id = db.execute("SELECT id FROM users WHERE handle = 'admin'").fetchone()["id"]
    assert claims["sub"] == str(admin_id)
    assert claims["handle"] == "admin"
    assert claims["token_type"] == "access"
    assert claims["iss"] == "cynode"
    assert claims["exp"] - claims["iat"] == 900
    uuid.UUID(claims["jti"])
    uuid.UUID(claims["sid"])
    assert gateway.get("/v1/users/me", headers=bearer(body["access_token"])).status_code == 200


@then("I receive a refresh token")
def receive_refresh_token(gateway_stack: RunningStack, db: Any, token_response: httpx.Response) -> None:
    body = token_response.json()
    refresh_token = body["refresh_token"]
    assert len(refresh_token) >= 32
    rows = db.execute("SELECT family_id, refresh_token_hash, is_active FROM refresh_sessions").fetchall()
    # Stored only as its SHA-256, in the session the access token names.
    assert rows == [
        {
            "family_id": uuid.UUID(access_claims(gateway_stack, body["access_token"])["sid"]),
            "refresh_token_hash": hashlib.sha256(refresh_token.encode()).digest(),
            "is_active": True,
        }
    ]


@then("I receive a new access token")
def receive_new_access_token(
    gateway: httpx.Client, gateway_stack: RunningStack, session: Session, token_response: httpx.Response
) -> None:
    assert token_response.status_code == 200, token_response.text
    new_access = token_response.json()["access_token"]
    assert new_access != session.access_token
    old_claims = access_claims(gateway_stack, session.access_token)
    new_claims = access_claims(gateway_stack, new_access)
    assert new_claims["sid"] == old_claims["sid"]
    assert new_claims["jti"] != old_claims["jti"]
    assert gateway.get("/v1/users/me", headers=bearer(new_access)).status_code == 200


@then("I receive a new refresh token")
def receive_new_refresh_token(session: Session, token_response: httpx.Response) -> None:
    new_refresh = token_response.json()["refresh_token"]
    assert new_refresh
    assert new_refresh != session.refresh_token


@then("the old refresh token is invalidated")
@then("my refresh token is invalidated")
def refresh_token_invalidated(gateway: httpx.Client, session: Session) -> None:
    assert_problem(gateway.post("/v1/auth/refresh", json={"refresh_token": session.refresh_token}), 401)


@when("I logout")
def logout(gateway: httpx.Client, session: Session) -> None:
    # No refresh token in the body: the access token's session alone decides what ends.
    response = gateway.post("/v1/auth/logout", json={}, headers=session.headers)
    assert response.status_code == 204, response.text
    assert response.content == b""


@then("I cannot use the old access token")
def old_access_token_refused(gateway: httpx.Client, session: Session) -> None:
    response = gateway.get("/v1/users/me", headers=session.headers)
    assert_problem(response, 401)
    assert response.json()["detail"] == "Invalid or expired token"
    assert_problem(gateway.post("/v1/auth/logout", json={}, headers=session.headers), 401)


@when("I request my user info", target_fixture="user_response")
def request_user_info(gateway: httpx.Client, session: Session) -> httpx.Response:
    return gateway.get("/v1/users/me", headers=session.headers)


@then(parsers.parse('I receive my user details including handle "{handle}"'))
def receive_user_details(db: Any, user_response: httpx.Response, handle: str) -> None:
    assert user_response.status_code == 200, user_response.text
    user_id = db.execute("SELECT id FROM users WHERE handle = %s", (handle,)).fetchone()["id"]
    assert user_response.json() == {"id": str(user_id), "handle": handle, "is_active": True, "is_admin": True}
