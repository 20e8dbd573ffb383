"""Acceptance: operator administration from the CLI (features/cynork/admin_cli.feature)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from click.testing import Result
from pytest_bdd import parsers, scenarios, then, when

from cynode.client.exit_codes import ExitCode
from cynode.settings import Role
from tests.fixtures.cli import Cli
from tests.fixtures.operator import OperatorHttp, run_cynode
from tests.fixtures.serve import Serve
from tests.fixtures.stack import RunningStack

scenarios("cynork/admin_cli.feature")


@when(parsers.parse('I run "{command}" with the new password "{password}"'), target_fixture="command_result")
def run_with_new_password(cli: Cli, command: str, password: str) -> Result:
    return run_cynode(cli, command, {"CYNODE_NEW_PASSWORD": password})


def can_log_in(gateway_url: str, handle: str, password: str) -> bool:
    response = httpx.post(f"{gateway_url}/v1/auth/login", json={"handle": handle, "password": password})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


@then(parsers.parse('"{handle}" can log in to the gateway with "{password}"'))
def logs_in(operator_stack: RunningStack, handle: str, password: str) -> None:
    assert can_log_in(operator_stack.url(Role.GATEWAY), handle, password)


@then(parsers.parse('"{handle}" appears in "cynode user list --json"'))
def listed_user(cli: Cli, handle: str) -> None:
    result = cli("user", "list", "--json")
    assert result.exit_code == 0, result.output
    assert handle in [user["handle"] for user in json.loads(result.stdout)["users"]]


@then(parsers.parse('the auth audit log records "{event}" for "{handle}"'))
def auth_audit(db: Any, event: str, handle: str) -> None:
    rows = db.execute(
        "SELECT 1 FROM auth_audit_log WHERE event_type = %s AND subject_handle = %s AND success", (event, handle)
    ).fetchall()
    assert len(rows) == 1


@then("the gateway is ready")
def gateway_ready(operator_stack: RunningStack) -> None:
    response = operator_stack.client(Role.GATEWAY).get("/readyz")
    assert (response.status_code, response.text) == (200, "ready")


@then(parsers.parse('the gateway is not ready because "{words}"'))
def gateway_not_ready(operator_stack: RunningStack, words: str) -> None:
    response = operator_stack.client(Role.GATEWAY).get("/readyz")
    assert response.status_code == 503
    assert words in response.text


@then("the command exits with status 3 and reports HTTP 403")
def refused(command_result: Result) -> None:
    assert command_result.exit_code == ExitCode.AUTH, command_result.output
    assert "(HTTP 403)" in command_result.stderr


@then("nothing was changed by the refused command")
def nothing_changed(operator_http: OperatorHttp, db: Any) -> None:
    assert db.execute("SELECT count(*) AS n FROM admin_audit_log").fetchone() == {"n": 0}
    assert db.execute("SELECT count(*) AS n FROM system_settings").fetchone() == {"n": 0}
    inactive = db.execute("SELECT count(*) AS n FROM users WHERE NOT is_active").fetchone()
    assert inactive == {"n": 0}
    assert operator_http.node("gpu-1")["admin_state"] == "enabled"


@then(parsers.parse('"{handle}" can log in to that process with "{password}"'))
def logs_in_to_serve(serve_process: Serve, handle: str, password: str) -> None:
    assert can_log_in(serve_process.url(serve_process.gateway, ""), handle, password)


@then(parsers.parse('"{handle}" cannot log in to that process with "{password}"'))
def refused_by_serve(serve_process: Serve, handle: str, password: str) -> None:
    assert not can_log_in(serve_process.url(serve_process.gateway, ""), handle, password)
