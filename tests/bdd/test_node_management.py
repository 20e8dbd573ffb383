"""Acceptance: draining, disabling and enabling nodes from the CLI (features/cynork/node_management.feature).

Nodes are scripted Worker APIs over real HTTP (:class:`FakeWorker`) registered through the real
control plane, so the real dispatcher decides where each job goes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

from pytest_bdd import given, parsers, scenarios, then, when

from cynode.settings import Role
from tests.fixtures.cli import Cli
from tests.fixtures.identity import Session, assert_problem
from tests.fixtures.operator import OperatorHttp
from tests.fixtures.serve import Serve
from tests.fixtures.stack import RunningStack
from tests.fixtures.tasks import FakeWorker, TaskApi, fake_node, task_api

scenarios("cynork/node_management.feature")

SETTLE_SECONDS = 1.0
"""How long a task must stay queued for "stays queued": the dispatcher wakes at once on every change."""


@given(parsers.parse('a worker node "{slug}" whose jobs take {seconds:d} seconds'), target_fixture="fake_workers")
def worker_node(
    operator_stack: RunningStack, fake_worker_factory: Callable[..., FakeWorker], slug: str, seconds: int
) -> dict[str, FakeWorker]:
    fake = fake_worker_factory(delay=seconds)
    fake_node(operator_stack, fake, slug)
    return {slug: fake}


@given(parsers.parse('the task "{name}" is running on "{slug}"'))
def task_running(tasks: TaskApi, fake_workers: dict[str, FakeWorker], name: str, slug: str) -> None:
    tasks.create(f"echo {name}", input_mode="commands", task_name=name)
    tasks.wait_for_status(name, {"running"})
    deadline = time.monotonic() + 30
    while not fake_workers[slug].runs:
        assert time.monotonic() < deadline, f"{name} never reached {slug}"
        time.sleep(0.05)


@given("a task API for the admin", target_fixture="tasks")
def tasks_fixture(operator_stack: RunningStack) -> TaskApi:
    return task_api(operator_stack)


@when(parsers.parse('I submit the task "{name}"'))
def submit(tasks: TaskApi, name: str) -> None:
    tasks.create(f"echo {name}", input_mode="commands", task_name=name)


@then(parsers.parse('the task "{name}" completes'))
def completes(tasks: TaskApi, name: str) -> None:
    assert tasks.wait_for_status(name)["status"] == "completed"


@then(parsers.parse('the task "{name}" completes on "{slug}"'))
def completes_on(tasks: TaskApi, name: str, slug: str) -> None:
    assert tasks.wait_for_status(name)["status"] == "completed"
    [job] = tasks.result(name)["jobs"]
    assert job["node_slug"] == slug


@then(parsers.parse('the task "{name}" stays queued'))
def stays_queued(tasks: TaskApi, fake_workers: dict[str, FakeWorker], name: str) -> None:
    task_id = tasks.task(name)["id"]
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        assert tasks.task(name)["status"] == "queued"
        time.sleep(0.1)
    assert all(run["task_id"] != task_id for fake in fake_workers.values() for run in fake.runs)


def node_in(cli: Cli, *args: str) -> Any:
    result = cli("node", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@then(parsers.parse('"cynode node get {slug} --json" shows admin state "{state}" and not dispatchable'))
def node_get_shows(cli: Cli, slug: str, state: str) -> None:
    found = node_in(cli, "get", slug)
    assert (found["admin_state"], found["dispatchable"]) == (state, False)


@then(parsers.parse('"cynode node list --json" shows "{slug}" with admin state "{state}" and not dispatchable'))
def node_list_shows(cli: Cli, slug: str, state: str) -> None:
    [found] = [node for node in node_in(cli, "list")["nodes"] if node["node_slug"] == slug]
    assert (found["admin_state"], found["enabled"], found["dispatchable"]) == (state, False, False)


@then(parsers.parse('dave gets 403 for listing, getting, draining, disabling and enabling "{slug}"'))
def dave_refused(operator_stack: RunningStack, user_session: Session, slug: str) -> None:
    http = operator_stack.client(Role.GATEWAY)
    assert_problem(http.get("/v1/nodes", headers=user_session.headers), 403)
    assert_problem(http.get(f"/v1/nodes/{slug}", headers=user_session.headers), 403)
    for action in ("drain", "disable", "enable"):
        assert_problem(http.post(f"/v1/nodes/{slug}/{action}", headers=user_session.headers), 403)


@then(parsers.parse('"{slug}" is still enabled and dispatchable'))
def still_enabled(operator_http: OperatorHttp, db: Any, slug: str) -> None:
    found = operator_http.node(slug)
    assert (found["admin_state"], found["dispatchable"]) == ("enabled", True)
    assert db.execute("SELECT count(*) AS n FROM admin_audit_log").fetchone() == {"n": 0}


# A real `cynode serve --role=all` process ------------------------------------------------------


@given("the node of that process is ready")
def serve_node_ready(serve_process: Serve) -> None:
    response = serve_process.wait_ready(serve_process.worker, timeout=120)
    assert (response.status_code, response.text) == (200, "ready")


def only_node(cli: Cli) -> dict[str, Any]:
    [found] = node_in(cli, "list")["nodes"]
    return cast(dict[str, Any], found)


@when("I drain the node of that process with the CLI")
def drain_serve_node(cli: Cli) -> None:
    result = cli("node", "drain", only_node(cli)["node_slug"])
    assert result.exit_code == 0, result.output


@when("I enable the node of that process with the CLI")
def enable_serve_node(cli: Cli) -> None:
    result = cli("node", "enable", only_node(cli)["node_slug"])
    assert result.exit_code == 0, result.output


@then('"cynode node list --json" shows the node of that process draining and not dispatchable')
def serve_node_draining(cli: Cli) -> None:
    found = only_node(cli)
    assert (found["admin_state"], found["dispatchable"]) == ("draining", False)


@when(parsers.parse('I submit the commands task "{command}" named "{name}" with the CLI'))
def submit_with_cli(cli: Cli, command: str, name: str) -> None:
    result = cli("task", "create", command, "--mode", "commands", "--name", name)
    assert result.exit_code == 0, result.output


def cli_task_status(cli: Cli, name: str) -> str:
    result = cli("task", "get", name, "--json")
    assert result.exit_code == 0, result.output
    status: str = json.loads(result.stdout)["status"]
    return status


@then(parsers.parse('the task "{name}" stays queued on that process'))
def serve_task_queued(cli: Cli, name: str) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        assert cli_task_status(cli, name) == "queued"
        time.sleep(0.1)


@then(parsers.parse('the task "{name}" completes on that process printing "{output}"'))
def serve_task_completes(cli: Cli, name: str, output: str) -> None:
    deadline = time.monotonic() + 120
    while cli_task_status(cli, name) != "completed":
        assert time.monotonic() < deadline, f"{name} did not complete"
        time.sleep(0.2)
    result = cli("task", "logs", name)
    assert result.stdout == f"{output}\n", result.output
