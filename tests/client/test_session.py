"""Login, whoami, logout and the credentials file, against the real gateway and orchestrator."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from cynode.client.credentials import Credentials
from cynode.contracts.codec import decode, encode
from cynode.settings import Role
from tests.client.conftest import Cli
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, bearer
from tests.fixtures.stack import RunningStack


def stored(config_home: Path) -> Credentials:
    return decode((config_home / "cynode" / "credentials.json").read_bytes(), Credentials)


def test_wrong_password_fails_with_the_problem_detail(cli: Cli, gateway_stack: RunningStack, config_home: Path) -> None:
    gateway_url = gateway_stack.url(Role.GATEWAY)
    result = cli("login", "--gateway", gateway_url, "--handle", ADMIN_HANDLE, input="not-the-password\n")
    assert result.exit_code == 1
    assert result.stderr == "Error: Invalid credentials (HTTP 401)\n"
    assert "Traceback" not in result.output
    assert not (config_home / "cynode" / "credentials.json").exists()


def test_unreachable_gateway_is_an_error_not_a_traceback(cli: Cli) -> None:
    result = cli("login", "--gateway", "http://127.0.0.1:9", "--handle", ADMIN_HANDLE, input="x\n")
    assert result.exit_code == 1
    assert "cannot reach the gateway" in result.stderr


def test_login_stores_private_credentials_and_never_prints_tokens(
    cli: Cli, logged_in: RunningStack, config_home: Path
) -> None:
    credentials_file = config_home / "cynode" / "credentials.json"
    assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials_file.parent.stat().st_mode) == 0o700
    credentials = stored(config_home)
    assert credentials.gateway_url == logged_in.url(Role.GATEWAY)

    whoami = cli("whoami")
    as_json = cli("whoami", "--json")
    assert whoami.exit_code == 0, whoami.output
    assert whoami.stdout.startswith(f"{ADMIN_HANDLE} (admin, id ")
    assert json.loads(as_json.stdout)["handle"] == ADMIN_HANDLE
    for result in (whoami, as_json, cli("login", "--gateway", credentials.gateway_url, "--handle", ADMIN_HANDLE,
                                        "--json", env={"CYNODE_PASSWORD": ADMIN_PASSWORD})):  # fmt: skip
        assert result.exit_code == 0, result.output
        for token in (credentials.access_token, credentials.refresh_token):
            assert token not in result.output


def test_a_rejected_access_token_is_refreshed_transparently(
    cli: Cli, logged_in: RunningStack, config_home: Path
) -> None:
    before = stored(config_home)
    credentials_file = config_home / "cynode" / "credentials.json"
    credentials_file.write_bytes(
        encode(Credentials(gateway_url=before.gateway_url, access_token="expired", refresh_token=before.refresh_token))
    )

    result = cli("whoami")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(ADMIN_HANDLE)
    after = stored(config_home)
    assert after.refresh_token != before.refresh_token, "the rotated refresh token is kept"
    assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600


def test_a_revoked_session_asks_to_log_in_again(
    cli: Cli, logged_in: RunningStack, gateway: httpx.Client, config_home: Path
) -> None:
    credentials = stored(config_home)
    me = gateway.get("/v1/users/me", headers=bearer(credentials.access_token)).json()
    admin_headers = bearer(credentials.access_token)
    revoked = gateway.post(f"/v1/users/{me['id']}/revoke_sessions", headers=admin_headers)
    assert revoked.is_success, revoked.text

    result = cli("whoami")

    assert result.exit_code == 1
    assert "cynode login" in result.stderr
    logged_out = cli("logout")
    assert (logged_out.exit_code, logged_out.stdout) == (0, "logged out\n")
    assert not (config_home / "cynode" / "credentials.json").exists()


def test_logout_revokes_the_session(
    cli: Cli, logged_in: RunningStack, gateway: httpx.Client, config_home: Path
) -> None:
    credentials = stored(config_home)

    result = cli("logout")

    assert result.exit_code == 0, result.output
    assert result.stdout == "logged out\n"
    assert not (config_home / "cynode" / "credentials.json").exists()
    assert gateway.get("/v1/users/me", headers=bearer(credentials.access_token)).status_code == 401
    refreshed = gateway.post("/v1/auth/refresh", json={"refresh_token": credentials.refresh_token})
    assert refreshed.status_code == 401
    whoami = cli("whoami")
    assert whoami.exit_code == 1
    assert "not logged in; run `cynode login`" in whoami.stderr
