"""``cynode task get/result`` show why a task ended other than completed (here: canceled)."""

from __future__ import annotations

import json

from tests.client.conftest import Cli
from tests.fixtures.stack import RunningStack


def test_get_and_result_show_the_reason_of_a_canceled_task(cli: Cli, logged_in: RunningStack) -> None:
    created = json.loads(cli("task", "create", "sleep 60", "--mode", "commands", "--name", "stopped", "--json").stdout)
    assert cli("task", "cancel", "stopped").exit_code == 0

    shown = cli("task", "get", "stopped")
    assert shown.exit_code == 0, shown.output
    assert "status:   canceled\nreason:   canceled\n" in shown.stdout
    assert json.loads(cli("task", "get", "stopped", "--json").stdout)["reason"] == "canceled"
    result = cli("task", "result", "stopped")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"task {created['id']}: canceled\n")
    assert "reason: canceled" in result.stdout
    [job] = json.loads(cli("task", "result", "stopped", "--json").stdout)["jobs"]
    assert job["reason"] == "canceled"
