"""Login, refresh and logout details: client identity in the audit, secrets kept out of logs, bad bodies."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from cynode.identity import service as service_module
from cynode.settings import Role
from tests.fixtures.identity import (
    ADMIN_HANDLE,
    ADMIN_PASSWORD,
    IDENTITY_ENV,
    IDENTITY_ROLES,
    USER_PASSWORD,
    Session,
    assert_problem,
    create_user,
    login,
)
from tests.fixtures.stack import RunningStack, StackFactory


def audited(db: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = db.execute(
        "SELECT event_type, subject_handle, reason, host(ip_address) AS ip, user_agent FROM auth_audit_log"
        " WHERE event_type LIKE 'login%%' ORDER BY created_at"
    ).fetchall()
    return rows


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"handle": "x" * 65, "password": ADMIN_PASSWORD}, "Handle or password is too long"),
        ({"handle": ADMIN_HANDLE, "password": "x" * 1025}, "Handle or password is too long"),
        ({"handle": ADMIN_HANDLE, "password": ""}, "Handle and password are required"),
    ],
)
def test_login_fields_out_of_bounds_are_400(gateway: httpx.Client, db: Any, body: Any, detail: str) -> None:
    assert assert_problem(gateway.post("/v1/auth/login", json=body), 400)["detail"] == detail
    assert [row["reason"] for row in audited(db)] == ["invalid request"]


def test_unknown_fields_are_ignored(gateway: httpx.Client) -> None:
    body = {"handle": ADMIN_HANDLE, "password": ADMIN_PASSWORD, "remember_me": True}
    assert gateway.post("/v1/auth/login", json=body).status_code == 200


def test_an_unknown_handle_costs_a_password_verification(
    gateway: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str | None] = []
    real_verify = service_module.verify_password

    async def counting_verify(stored_hash: str | None, password: str) -> bool:
        verified.append(stored_hash)
        return await real_verify(stored_hash, password)

    monkeypatch.setattr(service_module, "verify_password", counting_verify)
    for handle in ("nobody-at-all", ADMIN_HANDLE):
        response = gateway.post("/v1/auth/login", json={"handle": handle, "password": "wrong-password"})
        assert assert_problem(response, 401)["detail"] == "Invalid credentials"
    assert len(verified) == 2
    assert verified[0] is None
    assert verified[1] is not None


def test_a_disabled_user_gets_the_same_answer_as_a_wrong_password(
    gateway: httpx.Client, admin_session: Session, db: Any
) -> None:
    user_id = create_user(gateway, admin_session, "benched")["id"]
    assert gateway.post(f"/v1/users/{user_id}/disable", headers=admin_session.headers).status_code == 200
    response = gateway.post("/v1/auth/login", json={"handle": "benched", "password": USER_PASSWORD})
    assert assert_problem(response, 401)["detail"] == "Invalid credentials"
    assert audited(db)[-1]["reason"] == "user inactive"


# uvicorn itself believes X-Forwarded-For from 127.0.0.1, so these clients connect from another
# loopback address to show what the gateway does on its own.
CLIENT_ADDRESS = "127.0.0.2"


def client_from(stack: RunningStack) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS)
    return httpx.Client(base_url=stack.url(Role.GATEWAY), transport=transport, timeout=30)


def test_the_client_ip_and_user_agent_are_audited(gateway_stack: RunningStack, db: Any) -> None:
    headers = {"User-Agent": "u" * 600, "X-Forwarded-For": "203.0.113.9"}
    with client_from(gateway_stack) as client:
        client.post("/v1/auth/login", json={"handle": ADMIN_HANDLE, "password": ADMIN_PASSWORD}, headers=headers)
    row = audited(db)[-1]
    # X-Forwarded-For is ignored unless the gateway is told it sits behind a proxy.
    assert row["ip"] == CLIENT_ADDRESS
    assert row["user_agent"] == "u" * 512


@pytest.mark.parametrize(
    ("forwarded_for", "expected_ip"),
    [
        ("203.0.113.9", "203.0.113.9"),
        # Through two trusted proxies: the rightmost address no trusted proxy stands for.
        ("2001:db8::1, 10.0.0.1", "2001:db8::1"),
        # A client that writes its own header cannot pick the address it is limited as.
        ("198.51.100.1, 203.0.113.9", "203.0.113.9"),
        ("2001:db8::1, 192.0.2.7, 10.0.0.1", "192.0.2.7"),
        ("not-an-ip", CLIENT_ADDRESS),
        ("203.0.113.9, not-an-ip", CLIENT_ADDRESS),
    ],
)
def test_a_trusted_proxy_names_the_client(
    stack_factory: StackFactory, db: Any, forwarded_for: str, expected_ip: str
) -> None:
    trusted = [CLIENT_ADDRESS, "10.0.0.0/8"]
    stack = stack_factory(IDENTITY_ROLES, env=IDENTITY_ENV, overrides={"identity.trusted_proxies": trusted})
    with client_from(stack) as client:
        client.post(
            "/v1/auth/login",
            json={"handle": ADMIN_HANDLE, "password": ADMIN_PASSWORD},
            headers={"X-Forwarded-For": forwarded_for},
        )
    assert audited(db)[-1]["ip"] == expected_ip


def test_the_access_token_lifetime_follows_the_settings(stack_factory: StackFactory) -> None:
    stack = stack_factory(IDENTITY_ROLES, env=IDENTITY_ENV, overrides={"identity.access_token_ttl_seconds": 60})
    response = stack.client(Role.GATEWAY).post(
        "/v1/auth/login", json={"handle": ADMIN_HANDLE, "password": ADMIN_PASSWORD}
    )
    assert response.json()["expires_in"] == 60
    context = stack.stack.context
    assert context is not None
    claims = context.signer.verify(response.json()["access_token"], "access")
    assert claims["exp"] - claims["iat"] == 60


def test_logout_accepts_no_body_but_refuses_an_unreadable_one(gateway: httpx.Client, admin_session: Session) -> None:
    malformed = {**admin_session.headers, "Content-Type": "application/json"}
    assert_problem(gateway.post("/v1/auth/logout", content=b"{", headers=malformed), 400)
    form = {**admin_session.headers, "Content-Type": "application/x-www-form-urlencoded"}
    assert_problem(gateway.post("/v1/auth/logout", content=b"refresh_token=x", headers=form), 415)
    # Refused bodies ended nothing.
    assert gateway.get("/v1/users/me", headers=admin_session.headers).status_code == 200
    assert gateway.post("/v1/auth/logout", headers=admin_session.headers).status_code == 204


def test_logout_ignores_a_refresh_token_of_another_user(gateway: httpx.Client, admin_session: Session) -> None:
    create_user(gateway, admin_session, "bystander")
    bystander = login(gateway, "bystander", USER_PASSWORD)
    mine = login(gateway, ADMIN_HANDLE, ADMIN_PASSWORD)
    response = gateway.post("/v1/auth/logout", json={"refresh_token": bystander.refresh_token}, headers=mine.headers)
    assert response.status_code == 204
    assert gateway.get("/v1/users/me", headers=bystander.headers).status_code == 200
    assert gateway.post("/v1/auth/refresh", json={"refresh_token": bystander.refresh_token}).status_code == 200


def test_no_password_or_token_reaches_the_logs(
    gateway: httpx.Client, admin_session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [ADMIN_PASSWORD, USER_PASSWORD, "wrong-password", admin_session.access_token, admin_session.refresh_token]
    create_user(gateway, admin_session, "logged")
    session = login(gateway, "logged", USER_PASSWORD)
    gateway.post("/v1/auth/login", json={"handle": "logged", "password": "wrong-password"})
    refreshed = gateway.post("/v1/auth/refresh", json={"refresh_token": session.refresh_token}).json()
    gateway.post("/v1/auth/refresh", json={"refresh_token": session.refresh_token})  # a replay
    secrets += [session.access_token, session.refresh_token, refreshed["access_token"], refreshed["refresh_token"]]
    assert any(record.getMessage() == "auth_event" for record in caplog.records)
    for record in caplog.records:
        text = repr(vars(record)) + record.getMessage()
        for secret in secrets:
            assert secret not in text
