"""``cynode task ...`` against the real gateway and orchestrator; with no node, tasks stay queued."""

from __future__ import annotations

import json

from tests.client.conftest import Cli
from tests.fixtures.stack import RunningStack


def create(cli: Cli, *args: str) -> dict[str, object]:
    result = cli("task", "create", *args, "--json")
    assert result.exit_code == 0, result.output
    created: dict[str, object] = json.loads(result.stdout)
    return created


def test_create_list_get_cancel(cli: Cli, logged_in: RunningStack) -> None:
    created = create(cli, "echo hello", "--mode", "commands", "--name", "greeting")
    assert created["status"] == "queued"
    assert created["task_name"] == "greeting"
    human = cli("task", "create", "What is 2+2?")
    assert human.exit_code == 0, human.output
    assert human.stdout.startswith("created task ")
    assert human.stdout.endswith("(queued)\n")

    listed = cli("task", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [task["prompt"] for task in json.loads(listed.stdout)["tasks"]] == ["What is 2+2?", "echo hello"]
    one = json.loads(cli("task", "list", "--limit", "1", "--json").stdout)
    assert len(one["tasks"]) == 1
    assert "next_cursor" in one
    table = cli("task", "list", "--status", "queued")
    assert table.stdout.count("queued") == 2
    assert "greeting" in table.stdout

    by_name = cli("task", "get", "greeting")
    assert by_name.exit_code == 0, by_name.output
    assert f"id:       {created['id']}" in by_name.stdout
    assert json.loads(cli("task", "get", str(created["id"]), "--json").stdout)["prompt"] == "echo hello"
    result = json.loads(cli("task", "result", "greeting", "--json").stdout)
    assert result["status"] == "queued"
    logs = json.loads(cli("task", "logs", "greeting", "--stream", "stdout", "--json").stdout)
    assert logs["stdout"] == ""

    canceled = cli("task", "cancel", "greeting")
    assert canceled.exit_code == 0, canceled.output
    assert canceled.stdout == f"canceled task {created['id']}\n"
    again = json.loads(cli("task", "cancel", "greeting", "--json").stdout)
    assert again == {"task_id": created["id"], "canceled": False, "status": "canceled"}
    assert "canceled" in cli("task", "list", "--status", "canceled").stdout


def test_unknown_task_is_a_problem_not_a_traceback(cli: Cli, logged_in: RunningStack) -> None:
    result = cli("task", "get", "no-such-task")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert result.stderr.endswith("(HTTP 404)\n")


def test_task_commands_need_a_login(cli: Cli) -> None:
    result = cli("task", "list")
    assert result.exit_code == 1
    assert result.stderr == "Error: not logged in; run `cynode login` (HTTP 401)\n"


def test_wait_gives_up_after_its_timeout_and_leaves_the_task_alone(cli: Cli, logged_in: RunningStack) -> None:
    result = cli("task", "create", "echo hello", "--mode", "commands", "--name", "patient", "--wait", "--timeout", "1")
    assert result.exit_code == 124
    assert result.stderr.startswith("task ")
    assert result.stderr.endswith(" is still queued after 1 s\n")
    assert json.loads(cli("task", "get", "patient", "--json").stdout)["status"] == "queued"


def test_a_timeout_that_is_not_positive_is_refused(cli: Cli, logged_in: RunningStack) -> None:
    result = cli("task", "create", "echo hello", "--mode", "commands", "--wait", "--timeout", "0")
    assert result.exit_code == 2
    assert "--timeout" in result.stderr
