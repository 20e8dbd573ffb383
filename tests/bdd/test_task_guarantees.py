"""Acceptance: guarantees beyond upstream (features/tasks/task_dispatch_guarantees.feature)."""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.fixtures.identity import USER_PASSWORD, assert_problem, create_user, login
from tests.fixtures.stack import RunningStack, StackFactory
from tests.fixtures.tasks import FakeWorker, TaskApi, TaskScenario, fake_node, second_orchestrator, start_task_stack

scenarios("tasks/task_dispatch_guarantees.feature")

DB = Any


@pytest.fixture
def gateway_stack(stack_factory: StackFactory) -> RunningStack:
    """The identity harness's stack, with the node PSK and key the task fixtures use."""
    return start_task_stack(stack_factory)


@pytest.fixture
def others() -> dict[str, Any]:
    """Whatever else a scenario needs: another user's task, a scripted node, a task batch."""
    return {}


def table_counts(db: DB) -> dict[str, Any]:
    row: dict[str, Any] = db.execute(
        "SELECT (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM jobs) AS jobs,"
        " (SELECT max(updated_at) FROM tasks) AS tasks_changed, (SELECT max(updated_at) FROM jobs) AS jobs_changed"
    ).fetchone()
    return row


def wait_until(condition: Any, message: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


# Cancel kills the container -----------------------------------------------------------------------


@given(parsers.parse('a commands task "{commands}" is running in a container on the node'))
def running_task(task_scenario: TaskScenario, commands: str) -> None:
    worker = task_scenario.worker
    assert worker is not None
    task_scenario.created = task_scenario.api.create(commands, input_mode="commands")
    task_scenario.api.wait_for_status(task_scenario.task["id"], {"running"})
    wait_until(lambda: worker.running_containers() == 1, "the job's container never started")


@when("I cancel the task")
def cancel_task(task_scenario: TaskScenario) -> None:
    task_scenario.response = task_scenario.api.post(f"/v1/tasks/{task_scenario.task['id']}/cancel")


@then("no container of the task is left on the node")
def no_container_left(task_scenario: TaskScenario) -> None:
    worker = task_scenario.worker
    assert worker is not None
    assert task_scenario.answer.json() == {"task_id": task_scenario.task["id"], "canceled": True, "status": "canceled"}
    wait_until(lambda: not worker.containers(), "the canceled job's container is still there", within=30)


@then(parsers.parse('the task is still "{status}" after the worker answered'))
def still_canceled(task_scenario: TaskScenario, status: str) -> None:
    proxy = task_scenario.proxy
    assert proxy is not None
    # The worker's answer for the killed run comes back through the proxy; it must change nothing.
    wait_until(lambda: any(path.endswith(":cancel") for path in proxy.paths), "no cancel reached the node")
    time.sleep(1)
    result = task_scenario.api.result(task_scenario.task["id"])
    assert result["status"] == status
    [job] = result["jobs"]
    assert job["status"] == status
    assert "result" not in job


# Two orchestrators ----------------------------------------------------------------------------------


@given("a second orchestrator runs on the same database")
def second_orchestrator_runs(stack_factory: StackFactory) -> None:
    second_orchestrator(stack_factory)


@given(parsers.parse("a scripted node with room for {slots:d} jobs at a time"))
def scripted_node(task_scenario: TaskScenario, others: dict[str, Any], slots: int) -> None:
    fake = FakeWorker(delay=0.05).start()
    task_scenario.proxy = fake  # stopped with the scenario
    fake_node(task_scenario.stack, fake, max_concurrency=slots)
    others["slots"] = slots


@when(parsers.parse("I create {count:d} commands tasks"))
def create_batch(task_scenario: TaskScenario, others: dict[str, Any], count: int) -> None:
    others["batch"] = [task_scenario.api.create(f"echo {index}", input_mode="commands")["id"] for index in range(count)]


@then("every task completes on its first attempt")
def batch_completed(task_scenario: TaskScenario, others: dict[str, Any]) -> None:
    for task_id in others["batch"]:
        task_scenario.api.wait_for_status(task_id)
        result = task_scenario.api.result(task_id)
        assert result["status"] == "completed"
        assert [job["attempt"] for job in result["jobs"]] == [1]


@then(parsers.parse("the node ran each job exactly once and never more than {slots:d} at a time"))
def ran_exactly_once(task_scenario: TaskScenario, others: dict[str, Any], slots: int) -> None:
    fake = task_scenario.proxy
    assert fake is not None
    job_ids = [task_scenario.api.result(task_id)["jobs"][0]["id"] for task_id in others["batch"]]
    assert sorted(fake.run_ids()) == sorted(job_ids)
    assert fake.max_in_flight <= slots


# Privacy ----------------------------------------------------------------------------------------------


@given(parsers.parse('user "{handle}" has a task named "{name}"'))
def other_users_task(task_scenario: TaskScenario, others: dict[str, Any], handle: str, name: str) -> None:
    api = task_scenario.api
    create_user(api.http, api.session, handle)
    owner = TaskApi(api.http, login(api.http, handle, USER_PASSWORD))
    others["task"] = owner.create("echo private", task_name=name)


@then("reading alice's task by id or by name answers 404")
def reading_is_not_found(task_scenario: TaskScenario, others: dict[str, Any]) -> None:
    task = others["task"]
    for reference in (task["id"], task["task_name"]):
        for suffix in ("", "/result", "/logs"):
            assert_problem(task_scenario.api.get(f"/v1/tasks/{reference}{suffix}"), HTTPStatus.NOT_FOUND)


@then("canceling alice's task answers 404")
def canceling_is_not_found(task_scenario: TaskScenario, others: dict[str, Any], db: DB) -> None:
    task = others["task"]
    assert_problem(task_scenario.api.post(f"/v1/tasks/{task['id']}/cancel"), HTTPStatus.NOT_FOUND)
    assert db.execute("SELECT status FROM tasks WHERE id = %s", (task["id"],)).fetchone()["status"] == "queued"


# Paging -------------------------------------------------------------------------------------------------


@given(parsers.parse("I have {total:d} tasks of which {canceled:d} are canceled"))
def tasks_some_canceled(task_scenario: TaskScenario, others: dict[str, Any], total: int, canceled: int) -> None:
    ids = [task_scenario.api.create(f"echo {index}")["id"] for index in range(total)]
    chosen = ids[::2][:canceled]
    for task_id in chosen:
        task_scenario.api.cancel(task_id)
    others["canceled"] = chosen


@when(parsers.parse("I list my canceled tasks {limit:d} at a time"))
def list_canceled(task_scenario: TaskScenario, others: dict[str, Any], limit: int) -> None:
    pages = []
    cursor = None
    while True:
        params = {"status": "canceled", "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = task_scenario.api.get("/v1/tasks", params=params).json()
        pages.append([task["id"] for task in page["tasks"]])
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    others["pages"] = pages


@then(parsers.parse("I get the {count:d} canceled tasks, newest first, on {pages:d} pages"))
def canceled_pages(others: dict[str, Any], count: int, pages: int) -> None:
    assert len(others["pages"]) == pages
    listed = [task_id for page in others["pages"] for task_id in page]
    assert len(listed) == count
    assert listed == others["canceled"][::-1]


# Bad requests -------------------------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
BAD_REQUESTS = {
    "a task body that is not JSON": ("POST", "/v1/tasks", {"content": b"{'prompt': 1", "headers": JSON}),
    "a task body that is not declared JSON": (
        "POST",
        "/v1/tasks",
        {"content": b'{"prompt": "x"}', "headers": {"Content-Type": "text/plain"}},
    ),
    'a task with input_mode "shell"': ("POST", "/v1/tasks", {"json": {"prompt": "ls", "input_mode": "shell"}}),
    "a task with an empty prompt": ("POST", "/v1/tasks", {"json": {"prompt": ""}}),
    'a task with project_id "project-one"': (
        "POST",
        "/v1/tasks",
        {"json": {"prompt": "x", "project_id": "project-one"}},
    ),
    "a task list with limit 0": ("GET", "/v1/tasks", {"params": {"limit": 0}}),
    "a task list with limit 500": ("GET", "/v1/tasks", {"params": {"limit": 500}}),
    'a task list with cursor "garbage"': ("GET", "/v1/tasks", {"params": {"cursor": "garbage"}}),
    'task logs with stream "both"': ("GET", "/v1/tasks/{id}/logs", {"params": {"stream": "both"}}),
}


@when(parsers.parse("I send {request}"))
def send_bad_request(task_scenario: TaskScenario, others: dict[str, Any], db: DB, request: str) -> None:
    others["before"] = table_counts(db)
    method, path, options = BAD_REQUESTS[request]
    task_scenario.response = task_scenario.api.request(method, path.format(id=task_scenario.task["id"]), **options)


@then(parsers.parse("the answer is a {status:d} problem"))
def answer_is_problem(task_scenario: TaskScenario, status: int) -> None:
    problem = assert_problem(task_scenario.answer, status)
    assert problem["detail"]


@then("no task or job changed")
def nothing_changed(task_scenario: TaskScenario, others: dict[str, Any], db: DB) -> None:
    assert table_counts(db) == others["before"]
    assert task_scenario.api.task(task_scenario.task["id"])["status"] == "queued"
