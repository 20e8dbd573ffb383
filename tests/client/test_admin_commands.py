"""``cynode user|node|settings|credentials|status`` against a real gateway and orchestrator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cynode.client.exit_codes import ExitCode
from cynode.nodes.readiness import NO_EXTERNAL_PATH
from cynode.settings import Role
from tests.client.conftest import Cli, log_in
from tests.fixtures.nodes import PM_MODEL, configured_node
from tests.fixtures.stack import RunningStack, StackFactory, free_port
from tests.fixtures.tasks import start_task_stack

EXECUTION_MODE = "agents.project_manager.model.selection.execution_mode"
SECRET = "sk-cli-secret-94ab"


@pytest.fixture
def operator(cli: Cli, stack_factory: StackFactory) -> RunningStack:
    """A gateway and orchestrator that nodes can register with, the bootstrap admin logged in."""
    running = start_task_stack(stack_factory)
    result = log_in(cli, running)
    assert result.exit_code == 0, result.output
    return running


def ok_json(cli: Cli, *args: str, env: dict[str, str] | None = None) -> Any:
    result = cli(*args, "--json", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_user_lifecycle_and_exit_codes(cli: Cli, operator: RunningStack) -> None:
    created = ok_json(
        cli, "user", "create", "bob", "--email", "bob@example.org", env={"CYNODE_NEW_PASSWORD": "bob-password-1"}
    )
    assert (created["handle"], created["is_admin"], created["is_active"]) == ("bob", False, True)
    assert [u["handle"] for u in ok_json(cli, "user", "list")["users"]] == ["admin", "bob"]
    table = cli("user", "list")
    assert table.exit_code == 0
    assert "bob" in table.stdout
    assert "active" in table.stdout

    duplicate = cli("user", "create", "bob", env={"CYNODE_NEW_PASSWORD": "long-enough-pw"})
    assert duplicate.exit_code == ExitCode.CONFLICT, duplicate.output
    assert duplicate.stderr.startswith("Error: ")
    bad_handle = cli("user", "create", "Bad Handle", env={"CYNODE_NEW_PASSWORD": "long-enough-pw"})
    assert bad_handle.exit_code == ExitCode.INVALID
    assert cli("user", "disable", "nobody").exit_code == ExitCode.NOT_FOUND

    assert ok_json(cli, "user", "disable", "bob")["is_active"] is False
    gateway = operator.client(Role.GATEWAY)
    assert gateway.post("/v1/auth/login", json={"handle": "bob", "password": "bob-password-1"}).status_code == 401
    assert ok_json(cli, "user", "enable", "bob")["is_active"] is True
    reset = cli("user", "reset-password", "bob", input="bob-password-2\n")
    assert reset.exit_code == 0, reset.output
    assert gateway.post("/v1/auth/login", json={"handle": "bob", "password": "bob-password-2"}).status_code == 200

    # bob is no admin: every admin command exits with the auth status.
    as_bob = cli(
        "login", "--gateway", operator.url(Role.GATEWAY), "--handle", "bob", env={"CYNODE_PASSWORD": "bob-password-2"}
    )
    assert as_bob.exit_code == 0, as_bob.output
    for command in (["user", "list"], ["node", "list"], ["settings", "get"], ["credentials", "list"]):
        refused = cli(*command)
        assert refused.exit_code == ExitCode.AUTH, (command, refused.output)
        assert "(HTTP 403)" in refused.stderr


def test_node_commands_drain_disable_enable(cli: Cli, operator: RunningStack) -> None:
    configured_node(operator, "gpu-1", inference_running=True, available_models=[PM_MODEL])
    [listed] = ok_json(cli, "node", "list")["nodes"]
    assert (listed["node_slug"], listed["admin_state"], listed["dispatchable"]) == ("gpu-1", "enabled", True)
    table = cli("node", "list")
    assert table.stdout.splitlines()[0].split()[:3] == ["NODE", "STATE", "DISPATCHABLE"]
    assert table.stdout.splitlines()[1].split()[:3] == ["gpu-1", "enabled", "yes"]
    assert "admin state:" in cli("node", "get", "gpu-1").stdout

    drained = cli("node", "drain", "gpu-1")
    assert (drained.exit_code, drained.stdout) == (0, "node gpu-1: draining\n")
    assert cli("node", "drain", "gpu-1").stdout == "node gpu-1: already draining\n"
    assert ok_json(cli, "node", "disable", "gpu-1")["node"]["enabled"] is False
    enabled = ok_json(cli, "node", "enable", "gpu-1")
    assert (enabled["changed"], enabled["node"]["dispatchable"]) == (True, True)
    assert cli("node", "get", "no-such-node").exit_code == ExitCode.NOT_FOUND


def test_settings_and_status(cli: Cli, operator: RunningStack) -> None:
    configured_node(operator, "gpu-1", inference_running=True, available_models=[PM_MODEL])
    assert cli("status").exit_code == 0
    every = ok_json(cli, "settings", "get")["settings"]
    assert EXECUTION_MODE in {setting["key"] for setting in every}
    assert cli("settings", "get", EXECUTION_MODE).stdout == f'{EXECUTION_MODE}="auto" (default)\n'

    assert ok_json(cli, "settings", "set", EXECUTION_MODE, "force_external")["value"] == "force_external"
    bad = cli("settings", "set", EXECUTION_MODE, "warp")
    assert bad.exit_code == ExitCode.INVALID
    assert "must be one of" in bad.stderr
    assert cli("settings", "set", "no.such.key", "1").exit_code == ExitCode.NOT_FOUND

    status = cli("status", "--json", "--control-plane", operator.url(Role.ORCHESTRATOR))
    assert status.exit_code == ExitCode.FAILURE
    report = json.loads(status.stdout)
    assert [(r["role"], r["healthy"], r["ready"]) for r in report["roles"]] == [
        ("gateway", True, False), ("control_plane", True, False)
    ]  # fmt: skip
    assert report["roles"][0]["detail"] == NO_EXTERNAL_PATH
    assert report["system"]["nodes"][0]["node_slug"] == "gpu-1"
    assert report["system"]["queued_jobs"] == 0
    human = cli("status")
    assert "not ready" in human.stdout
    assert "queue:" in human.stdout

    assert ok_json(cli, "settings", "set", EXECUTION_MODE, "null")["is_set"] is False
    assert cli("status").exit_code == 0


def test_status_of_an_unreachable_gateway(cli: Cli) -> None:
    result = cli("status", "--gateway", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "unreachable" in result.stdout


def test_credentials_commands_never_echo_the_secret(cli: Cli, operator: RunningStack) -> None:
    added = cli("credentials", "add", "--provider", "openai", "--name", "pm", "--json", input=SECRET + "\n")
    assert added.exit_code == 0, added.output
    credential = json.loads(added.stdout)
    assert SECRET not in added.output
    listed = cli("credentials", "list")
    assert "openai" in listed.stdout
    assert "active" in listed.stdout
    again = cli("credentials", "add", "--provider", "openai", "--name", "pm", env={"CYNODE_CREDENTIAL_SECRET": "x"})
    assert again.exit_code == ExitCode.CONFLICT
    rotated = cli("credentials", "rotate", credential["credential_id"], input="sk-rotated\n")
    assert rotated.exit_code == 0, rotated.output
    assert "sk-rotated" not in rotated.output
    assert ok_json(cli, "credentials", "disable", credential["credential_id"])["active"] is False
    assert cli("credentials", "disable", "not-an-id").exit_code == ExitCode.USAGE
    no_secret = cli("credentials", "add", "--provider", "openai", "--name", "other", input="")
    assert no_secret.exit_code == ExitCode.USAGE


def test_admin_commands_need_a_login(cli: Cli) -> None:
    result = cli("node", "list")
    assert result.exit_code == ExitCode.AUTH
    assert "cynode login" in result.stderr
