"""First-start users: the bootstrap admin's password sources and the reserved system user."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from cynode.identity.bootstrap import ensure_bootstrap_users
from cynode.identity.passwords import hash_password
from cynode.settings import Role, SettingsError
from tests.fixtures.identity import IDENTITY_ENV, IDENTITY_ROLES, assert_problem
from tests.fixtures.stack import StackFactory

NODE_PSK_ONLY = {key: value for key, value in IDENTITY_ENV.items() if key != "CYNODE_ADMIN_PASSWORD"}
GENERATED = re.compile(r"generated password: (\S+)")


def try_login(client: httpx.Client, password: str, handle: str = "admin") -> int:
    return client.post("/v1/auth/login", json={"handle": handle, "password": password}).status_code


def test_a_generated_password_is_printed_once_and_only_its_hash_stored(
    stack_factory: StackFactory, db: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = stack_factory(IDENTITY_ROLES, env=NODE_PSK_ONLY)
    printed = GENERATED.findall(capfd.readouterr().err)
    assert len(printed) == 1
    password = printed[0]
    assert len(password) >= 20
    assert try_login(first.client(Role.GATEWAY), password) == 200

    for record in caplog.records:
        assert password not in record.getMessage()
        assert password not in repr(vars(record))
    assert any(record.getMessage() == "bootstrap_admin_created" for record in caplog.records)
    stored = db.execute(
        "SELECT c.password_hash, c.hash_alg FROM password_credentials c JOIN users u ON u.id = c.user_id"
        " WHERE u.handle = 'admin'"
    ).fetchone()
    assert stored["hash_alg"] == "argon2id"
    assert stored["password_hash"].startswith("$argon2id$v=19$m=65536,t=3,p=2$")
    assert password not in stored["password_hash"]

    # A restart, now with a configured password, leaves the existing admin alone and prints nothing.
    first.stop()
    second = stack_factory(IDENTITY_ROLES, env={**NODE_PSK_ONLY, "CYNODE_ADMIN_PASSWORD": "configured-later"})
    assert GENERATED.findall(capfd.readouterr().err) == []
    gateway = second.client(Role.GATEWAY)
    assert try_login(gateway, password) == 200
    assert try_login(gateway, "configured-later") == 401


def test_the_password_can_come_from_a_file(
    stack_factory: StackFactory, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "admin_password"
    secret.write_text("from-a-file-password\n", encoding="utf-8")
    stack = stack_factory(IDENTITY_ROLES, env={**NODE_PSK_ONLY, "CYNODE_ADMIN_PASSWORD_FILE": str(secret)})
    assert try_login(stack.client(Role.GATEWAY), "from-a-file-password") == 200
    assert GENERATED.findall(capfd.readouterr().err) == []


def test_a_configured_password_below_the_policy_stops_the_start(stack_factory: StackFactory) -> None:
    with pytest.raises(SettingsError, match="CYNODE_ADMIN_PASSWORD: Password must be at least 8 characters"):
        stack_factory(IDENTITY_ROLES, env={**NODE_PSK_ONLY, "CYNODE_ADMIN_PASSWORD": "short"})


def test_concurrent_starts_create_each_user_once(stack_factory: StackFactory, db: Any) -> None:
    stack = stack_factory(IDENTITY_ROLES, env=IDENTITY_ENV)
    context = stack.stack.context
    assert context is not None
    db.execute("DELETE FROM users WHERE handle = 'admin'")

    async def start_at_once() -> None:
        await asyncio.gather(*(ensure_bootstrap_users(context) for _ in range(3)))

    stack.run(start_at_once())
    rows = db.execute("SELECT handle, is_admin, is_system FROM users ORDER BY handle").fetchall()
    assert rows == [
        {"handle": "admin", "is_admin": True, "is_system": False},
        {"handle": "system", "is_admin": False, "is_system": True},
    ]
    assert try_login(stack.client(Role.GATEWAY), IDENTITY_ENV["CYNODE_ADMIN_PASSWORD"]) == 200


def test_the_system_user_cannot_log_in_even_with_a_credential(
    gateway: httpx.Client, gateway_stack: Any, db: Any
) -> None:
    password_hash = gateway_stack.run(hash_password("system-password"))
    db.execute(
        "INSERT INTO password_credentials (user_id, password_hash, hash_alg)"
        " SELECT id, %s, 'argon2id' FROM users WHERE handle = 'system'",
        (password_hash,),
    )
    response = gateway.post("/v1/auth/login", json={"handle": "system", "password": "system-password"})
    assert assert_problem(response, 401)["detail"] == "Invalid credentials"
    reason = db.execute("SELECT reason FROM auth_audit_log WHERE subject_handle = 'system'").fetchone()["reason"]
    assert reason == "system user"
