"""Acceptance: the task lifecycle through the user API (features/orchestrator/orchestrator_task_lifecycle.feature).

Tasks are dispatched to a real Worker API running real containers, reached through a recording
proxy so the scenarios can see exactly what the orchestrator sent.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.fixtures.stack import RunningStack, StackFactory
from tests.fixtures.tasks import TaskScenario, start_task_stack

scenarios("orchestrator/orchestrator_task_lifecycle.feature")


@pytest.fixture
def gateway_stack(stack_factory: StackFactory) -> RunningStack:
    """The identity harness's stack, with the node PSK and key the task fixtures use."""
    return start_task_stack(stack_factory)


def dispatched(task_scenario: TaskScenario, prompt: str, input_mode: str) -> None:
    task_scenario.created = task_scenario.api.create(prompt, input_mode=input_mode)
    task_scenario.api.wait_for_status(task_scenario.task["id"])


@given("a task of mine has completed")
def completed_task(task_scenario: TaskScenario) -> None:
    dispatched(task_scenario, "echo hello world; echo careful >&2", "commands")
    assert task_scenario.api.task(task_scenario.task["id"])["status"] == "completed"


@when(parsers.parse('I submit a task with prompt "{prompt}"'))
def submit_prompt(task_scenario: TaskScenario, prompt: str) -> None:
    task_scenario.created = task_scenario.api.create(prompt)


@when(parsers.parse('I submit a task with prompt "{prompt}" and name "{name}"'))
def submit_named(task_scenario: TaskScenario, prompt: str, name: str) -> None:
    task_scenario.created = task_scenario.api.create(prompt, task_name=name)


@when(parsers.parse('I submit the commands "{commands}" and the orchestrator dispatches them to the node'))
@when(parsers.parse('I submit a task in input mode "commands" with prompt "{commands}" and it is dispatched'))
def submit_commands(task_scenario: TaskScenario, commands: str) -> None:
    dispatched(task_scenario, commands, "commands")


@when(parsers.parse('I submit a task with prompt "{prompt}" and list my tasks {limit:d} at a time'))
def submit_and_list(task_scenario: TaskScenario, prompt: str, limit: int) -> None:
    task_scenario.created = task_scenario.api.create(prompt)
    task_scenario.response = task_scenario.api.get("/v1/tasks", params={"limit": limit})


@when(parsers.parse('I submit a task with prompt "{prompt}" and cancel it'))
def submit_and_cancel(task_scenario: TaskScenario, prompt: str) -> None:
    task_scenario.created = task_scenario.api.create(prompt)
    task_scenario.response = task_scenario.api.post(f"/v1/tasks/{task_scenario.task['id']}/cancel")


READ_PATHS = {"that task": "", "the task result": "/result", "the task logs": "/logs"}


@when(parsers.parse("I read {what}"))
def read_task(task_scenario: TaskScenario, what: str) -> None:
    task_scenario.response = task_scenario.api.get(f"/v1/tasks/{task_scenario.task['id']}{READ_PATHS[what]}")


@then("the answer carries a task id")
def has_task_id(task_scenario: TaskScenario) -> None:
    task_id = task_scenario.task["task_id"]
    assert str(uuid.UUID(task_id)) == task_id
    assert task_scenario.task["id"] == task_id


@then(parsers.parse('the task\'s status is "{status}"'))
def task_status_is(task_scenario: TaskScenario, status: str) -> None:
    assert task_scenario.api.task(task_scenario.task["id"])["status"] == status


@then(parsers.parse('the task is named "{name}"'))
def task_is_named(task_scenario: TaskScenario, name: str) -> None:
    assert task_scenario.task["task_name"] == name
    assert task_scenario.api.task(name)["id"] == task_scenario.task["id"]


@then("I see its details with its status")
def task_details(task_scenario: TaskScenario) -> None:
    assert task_scenario.answer.status_code == HTTPStatus.OK
    details = task_scenario.answer.json()
    assert details["id"] == task_scenario.task["id"]
    assert details["prompt"] == task_scenario.task["prompt"]
    assert details["task_name"] == task_scenario.task["task_name"]
    # Prompt tasks wait for a node running inference, which this node does not.
    assert details["status"] == "queued"


@then("its job carries stdout and an exit code")
def job_output(task_scenario: TaskScenario) -> None:
    assert task_scenario.answer.status_code == HTTPStatus.OK
    result = task_scenario.answer.json()
    assert (result["task_id"], result["status"]) == (task_scenario.task["id"], "completed")
    [job] = result["jobs"]
    assert (job["status"], job["node_slug"], job["attempt"]) == ("completed", "test-node-01", 1)
    assert isinstance(job["result"], dict)
    assert job["result"]["stdout"] == "hello world\n"
    assert job["result"]["stderr"] == "careful\n"
    assert job["result"]["exit_code"] == 0


@then("they hold the job's stdout and stderr")
def logs_hold_output(task_scenario: TaskScenario) -> None:
    assert task_scenario.answer.status_code == HTTPStatus.OK
    assert task_scenario.answer.json() == {
        "task_id": task_scenario.task["id"],
        "stdout": "hello world\n",
        "stderr": "careful\n",
    }


@then("the node's Worker API was called at the URL from its configuration")
def called_at_node_url(task_scenario: TaskScenario) -> None:
    assert task_scenario.proxy is not None
    # The proxy listens at the URL the node reported; it saw the job on the Worker API path.
    assert task_scenario.proxy.paths == ["/v1/worker/jobs:run"]
    [sent] = task_scenario.proxy.runs
    assert sent["task_id"] == task_scenario.task["id"]
    assert task_scenario.api.task(task_scenario.task["id"])["status"] == "completed"


@then("that call presented the bearer token from the node's configuration")
def presented_node_token(task_scenario: TaskScenario) -> None:
    assert task_scenario.proxy is not None
    assert task_scenario.proxy.authorizations == [f"Bearer {task_scenario.proxy.token}"]


@then(parsers.parse('the worker was asked to run a command containing "{text}"'))
def command_contains(task_scenario: TaskScenario, text: str) -> None:
    assert task_scenario.proxy is not None
    [sent] = task_scenario.proxy.runs
    assert sent["sandbox"]["command"] == ["sh", "-c", text]
    result = task_scenario.api.result(task_scenario.task["id"])
    assert result["jobs"][0]["result"]["stdout"] == "hello\n"


@then("the list holds that task")
def list_holds_task(task_scenario: TaskScenario) -> None:
    assert task_scenario.answer.status_code == HTTPStatus.OK
    listed = task_scenario.answer.json()
    assert [task["id"] for task in listed["tasks"]] == [task_scenario.task["id"]]
    assert "next_cursor" not in listed
