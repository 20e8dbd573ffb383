"""Abuse limits of identity and the HTTP edge: secrets, session lifetime, unlock, addresses, counts, deadlines."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from litestar import get

from cynode.http import server
from cynode.http.app import build_app
from cynode.http.client_address import ClientAddressResolver, source_network
from cynode.http.server import ServedApp
from cynode.identity.retention import purge_expired
from cynode.settings import Role, SettingsError, load_settings
from cynode.tokens import TokenSigner, WeakSecretError
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

# Secrets


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, "\u00e9" * 15])
def test_a_jwt_secret_shorter_than_32_bytes_is_refused(secret: str) -> None:
    with pytest.raises(WeakSecretError, match="at least 32 bytes"):
        TokenSigner(secret)


def test_the_stack_refuses_to_start_with_a_weak_jwt_secret(stack_factory: StackFactory) -> None:
    with pytest.raises(SettingsError, match="CYNODE_JWT_SECRET"):
        stack_factory(IDENTITY_ROLES, env={**IDENTITY_ENV, "CYNODE_JWT_SECRET": "too-short-secret"})


def test_user_and_node_tokens_use_different_keys_and_audiences() -> None:
    signer = TokenSigner("a-signing-secret-that-is-long-enough-0123")
    node = signer.issue("node", "node-id", timedelta(minutes=1), node_slug="n")
    access = signer.issue("access", "user-id", timedelta(minutes=1))
    assert jwt.decode(node.token, options={"verify_signature": False})["aud"] == "cynode-control-plane"
    assert jwt.decode(access.token, options={"verify_signature": False})["aud"] == "cynode-user-api"
    assert signer.derive_key("jwt:cynode-user-api") != signer.derive_key("jwt:cynode-control-plane")


# Sessions


def test_refresh_cannot_extend_a_session_past_its_absolute_lifetime(stack_factory: StackFactory) -> None:
    overrides = {"identity.session_max_lifetime_seconds": 3, "identity.refresh_token_ttl_seconds": 3600}
    gateway = stack_factory(IDENTITY_ROLES, env=IDENTITY_ENV, overrides=overrides).client(Role.GATEWAY)
    session = login(gateway, ADMIN_HANDLE, ADMIN_PASSWORD)
    refreshed = gateway.post("/v1/auth/refresh", json={"refresh_token": session.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    time.sleep(3.5)
    expired = gateway.post("/v1/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]})
    assert_problem(expired, 401)
    # The access token of the ended session no longer passes either.
    assert_problem(
        gateway.get("/v1/users/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}), 401
    )


# Unlock


def test_unlock_is_for_admins_and_known_users(gateway: httpx.Client, admin_session: Session, db: Any) -> None:
    create_user(gateway, admin_session, "ursula")
    ursula = login(gateway, "ursula", USER_PASSWORD)
    [admin] = db.execute("SELECT id FROM users WHERE handle = 'admin'").fetchall()
    [system] = db.execute("SELECT id FROM users WHERE handle = 'system'").fetchall()
    assert_problem(gateway.post(f"/v1/users/{admin['id']}/unlock"), 401)
    assert_problem(gateway.post(f"/v1/users/{admin['id']}/unlock", headers=ursula.headers), 403)
    assert_problem(gateway.post("/v1/users/not-a-uuid/unlock", headers=admin_session.headers), 400)
    unknown = "00000000-0000-0000-0000-000000000000"
    assert_problem(gateway.post(f"/v1/users/{unknown}/unlock", headers=admin_session.headers), 404)
    assert_problem(gateway.post(f"/v1/users/{system['id']}/unlock", headers=admin_session.headers), 400)
    assert db.execute("SELECT count(*) AS n FROM auth_audit_log WHERE event_type = 'lockout_cleared'").fetchone() == {
        "n": 0
    }


# Client addresses


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("203.0.113.9", "203.0.113.9/32"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1/32"),
        ("not-an-address", None),
        (None, None),
    ],
)
def test_ipv6_clients_are_limited_per_64(address: str | None, source: str | None) -> None:
    assert source_network(address) == source


def test_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    assert ClientAddressResolver([]).resolve("192.0.2.1", "203.0.113.9") == "192.0.2.1"
    assert ClientAddressResolver(["10.0.0.0/8"]).resolve("192.0.2.1", "203.0.113.9") == "192.0.2.1"


def test_an_ipv6_flood_from_one_64_is_one_source(stack_factory: StackFactory, db: Any) -> None:
    overrides = {"identity.login_failures_before_lockout": 3, "identity.trusted_proxies": ["127.0.0.0/8"]}
    gateway = stack_factory(IDENTITY_ROLES, env=IDENTITY_ENV, overrides=overrides).client(Role.GATEWAY)
    statuses = [
        gateway.post(
            "/v1/auth/login",
            json={"handle": f"nobody-{number}", "password": "wrong-password"},
            headers={"X-Forwarded-For": f"2001:db8:7:7::{number + 1:x}"},
        ).status_code
        for number in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


@pytest.mark.parametrize("proxies", [["not-a-network"], ["10.0.0.0/33"]])
def test_an_unusable_trusted_proxy_refuses_start_up(proxies: list[str]) -> None:
    with pytest.raises(SettingsError, match="trusted_proxies"):
        load_settings(env={}, overrides={"identity.trusted_proxies": proxies})


# Counting and retention


def test_refused_refreshes_past_the_threshold_are_only_counted(stack_factory: StackFactory, db: Any) -> None:
    overrides = {"identity.audit_refusals_per_minute_per_source": 3}
    gateway = stack_factory(IDENTITY_ROLES, env=IDENTITY_ENV, overrides=overrides).client(Role.GATEWAY)
    for number in range(12):
        assert_problem(gateway.post("/v1/auth/refresh", json={"refresh_token": f"forged-{number}"}), 401)
    audited = db.execute("SELECT count(*) AS n FROM auth_audit_log WHERE event_type = 'refresh_failure'").fetchone()
    counted = db.execute(
        "SELECT sum(refusals) AS n FROM auth_refusal_counts WHERE event_type = 'refresh_failure'"
    ).fetchone()
    # A minute boundary may fall inside the loop and start a second bucket.
    assert 3 <= audited["n"] <= 6
    assert counted["n"] == 12


def test_old_audit_rows_counts_and_attempts_are_purged(gateway_stack: RunningStack, db: Any) -> None:
    db.execute(
        """
        INSERT INTO auth_audit_log (event_type, success, reason, created_at) VALUES
            ('login_failure', false, 'old', now() - interval '91 days'),
            ('login_failure', false, 'recent', now() - interval '89 days')
        """
    )
    db.execute(
        """
        INSERT INTO auth_refusal_counts (minute, source, event_type, refusals) VALUES
            (now() - interval '91 days', '192.0.2.1/32', 'login_failure', 5),
            (date_trunc('minute', now()), '192.0.2.1/32', 'login_failure', 5)
        """
    )
    db.execute(
        """
        INSERT INTO login_attempts (outcome, handle_digest, source, created_at) VALUES
            ('credential_failure', '\\x00', '192.0.2.1/32', now() - interval '31 days'),
            ('success', '\\x00', '192.0.2.1/32', now() - interval '29 days')
        """
    )
    context = gateway_stack.stack.context
    assert context is not None
    gateway_stack.run(purge_expired(context))
    reasons = {row["reason"] for row in db.execute("SELECT reason FROM auth_audit_log").fetchall()}
    assert "old" not in reasons
    assert "recent" in reasons
    assert db.execute("SELECT count(*) AS n FROM auth_refusal_counts").fetchone() == {"n": 1}
    assert [row["outcome"] for row in db.execute("SELECT outcome FROM login_attempts").fetchall()] == ["success"]


# Server limits


def test_a_connection_whose_headers_come_too_slowly_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "HEADER_READ_TIMEOUT_SECONDS", 0.5)

    @get("/ping", sync_to_thread=False)
    def ping() -> str:
        return "pong"

    async def ready() -> None:
        return None

    async def scenario() -> None:
        served = ServedApp(
            "deadline", build_app(route_handlers=[ping], readiness=ready, max_body_bytes=1024), "127.0.0.1", 0
        )
        await served.start()
        try:
            loop = asyncio.get_running_loop()
            slow = socket.create_connection(("127.0.0.1", served.port))
            slow.sendall(b"GET /ping HTTP/1.1\r\nHost: slow\r\n")
            slow.settimeout(5)
            started = time.monotonic()
            assert await loop.run_in_executor(None, slow.recv, 1024) == b""
            assert time.monotonic() - started < 4
            slow.close()
            async with httpx.AsyncClient(base_url=served.base_url) as client:
                assert (await client.get("/ping")).text == "pong"
        finally:
            await served.stop()

    asyncio.run(scenario())
